import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.webhooks.targets import UnsafeTarget, check_target, is_public

PRIVATE_TARGETS = [
    ("http://127.0.0.1/hooks", "127.0.0.1"),
    ("http://localhost:8080/hooks", "localhost"),
    ("http://10.1.2.3/hooks", "10.1.2.3"),
    ("https://192.168.1.20/hooks", "192.168.1.20"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://[::1]:9000/hooks", "::1"),
    ("http://[::ffff:127.0.0.1]/hooks", "::ffff:127.0.0.1"),
    ("http://100.64.0.1/hooks", "100.64.0.1"),
    ("http://172.16.0.5/hooks", "172.16.0.5"),
    ("http://0.0.0.0/hooks", "0.0.0.0"),
    ("http://224.0.0.1/hooks", "224.0.0.1"),
    ("http://[fd00::1]/hooks", "fd00::1"),
    ("http://[fe80::1]/hooks", "fe80::1"),
    ("http://2130706433/hooks", "127.0.0.1"),  # 127.0.0.1 written as one number
]

PUBLIC_TARGETS = [
    "http://93.184.216.34/hooks",
    "https://93.184.216.34:8443/hooks?x=1",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hooks",
    "https://[::ffff:93.184.216.34]/hooks",
    "https://[64:ff9b::5db8:d822]/hooks",  # NAT64 form of 93.184.216.34
]


@pytest.mark.parametrize(("url", "named"), PRIVATE_TARGETS)
async def test_private_targets_are_refused(url: str, named: str) -> None:
    with pytest.raises(UnsafeTarget, match="not a public address") as refused:
        await check_target(url, allow_private=False)
    assert named in str(refused.value)


async def test_the_refusal_names_the_resolved_address() -> None:
    with pytest.raises(UnsafeTarget) as refused:
        await check_target("http://localhost/hooks", allow_private=False)
    message = str(refused.value)
    assert "127.0.0.1" in message or "::1" in message


@pytest.mark.parametrize(("url", "named"), PRIVATE_TARGETS)
async def test_private_targets_are_allowed_when_asked(url: str, named: str) -> None:
    await check_target(url, allow_private=True)


@pytest.mark.parametrize("url", PUBLIC_TARGETS)
async def test_public_addresses_are_accepted(url: str) -> None:
    await check_target(url, allow_private=False)


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://93.184.216.34/hooks", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme"),
        ("93.184.216.34/hooks", "scheme"),
        ("http:///hooks", "no host"),
        ("http://nowhere.invalid/hooks", "cannot resolve"),
    ],
)
async def test_malformed_or_unresolvable_targets_are_refused(
    url: str, reason: str, allow_private: bool
) -> None:
    with pytest.raises(UnsafeTarget, match=reason):
        await check_target(url, allow_private=allow_private)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("93.184.216.34", True),
        ("100.63.255.255", True),
        ("100.64.0.0", False),
        ("100.127.255.255", False),
        ("100.128.0.0", True),
        ("192.0.2.1", False),  # documentation
        ("198.18.0.1", False),  # benchmarking
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("239.255.255.250", False),  # multicast
        ("2001:4860:4860::8888", True),
        ("::", False),
        ("ff02::1", False),
        ("fc00::1", False),
        ("2001:db8::1", False),  # documentation
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:808:808::", True),  # 6to4 of 8.8.8.8
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b::808:808", True),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_mapped_form_agree(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert is_public(mapped) is is_public(address)
