import httpx


def assert_problem(response: httpx.Response, status: int) -> dict:
    """Asserts an RFC 9457 problem response with `status`, and returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body
