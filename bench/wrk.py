"""Running wrk and reading its report."""

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# wrk prints the summary itself; this adds the percentiles and error counts we report.
_REPORT_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("BENCH p50_us=%d p99_us=%d requests=%d non2xx=%d errors=%d\\n",
    latency:percentile(50), latency:percentile(99), summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class Figures:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int  # answers with status >= 400 (wrk counts those, not 3xx)
    socket_errors: int  # connect, read, write errors and timeouts

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages if missing."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed (apt-get install wrk)")
    return found


def run_wrk(
    url: str, script: str, *, seconds: float, connections: int, threads: int, workdir: Path
) -> Figures:
    """Drive `url` with wrk running `script` (Lua setting up requests) plus our report."""
    lua = workdir / f"scenario_{abs(hash((url, script)))}.lua"
    lua.write_text(script + _REPORT_LUA)
    result = subprocess.run(
        [
            ensure_wrk(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(lua),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    report = re.search(
        r"BENCH p50_us=(\d+) p99_us=(\d+) requests=(\d+) non2xx=(\d+) errors=(\d+)", result.stdout
    )
    if not rate or not report:
        raise RuntimeError(f"could not read wrk's output:\n{result.stdout}\n{result.stderr}")
    p50, p99, requests, non2xx, errors = (int(v) for v in report.groups())
    return Figures(float(rate.group(1)), p50 / 1000, p99 / 1000, requests, non2xx, errors)
