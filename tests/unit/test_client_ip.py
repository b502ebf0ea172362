"""X-Forwarded-For is believed only from configured proxies."""

from gateway.ratelimit import client_ip, client_network, parse_networks


def scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 5000), "headers": headers}


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_ip(scope("203.0.113.9", "198.51.100.1"), []) == "203.0.113.9"


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_ip(scope("203.0.113.9", "198.51.100.1"), trusted) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_ip(scope("10.1.2.3", "198.51.100.1"), trusted) == "198.51.100.1"


def test_the_nearest_untrusted_hop_wins_over_spoofed_ones() -> None:
    trusted = parse_networks(["10.0.0.0/8", "192.0.2.7"])
    forwarded = "6.6.6.6, 198.51.100.1, 192.0.2.7"
    assert client_ip(scope("10.1.2.3", forwarded), trusted) == "198.51.100.1"


def test_a_trusted_peer_without_the_header_is_the_client() -> None:
    trusted = parse_networks(["127.0.0.1"])
    assert client_ip(scope("127.0.0.1"), trusted) == "127.0.0.1"


def test_an_ipv6_client_is_limited_by_its_64() -> None:
    assert client_network("2001:db8:1:2::1") == client_network("2001:db8:1:2:ffff::9")
    assert client_network("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")


def test_an_ipv4_client_is_limited_by_its_address() -> None:
    assert client_network("198.51.100.1") == "198.51.100.1"
    assert client_network("::ffff:198.51.100.1") == "198.51.100.1"
    assert client_network("unknown") == "unknown"
