"""Shared test data and fakes (moved out of test_network_fields.py, which other tests use too)."""

from __future__ import annotations

GOOD = [
    ("WIFI_SSID", "HomeNet"),
    ("WIFI_SSID", "x"),
    ("WIFI_SSID", "x" * 32),
    ("WIFI_SSID", "é" * 16),  # 32 bytes of UTF-8
    ("WIFI_SSID", 'Büro 5 GHz "guest" #2'),
    ("WIFI_SSID", "📶" * 8),  # 4 bytes each
    ("WIFI_PASSWORD", "12345678"),
    ("WIFI_PASSWORD", "x" * 63),
    ("WIFI_PASSWORD", " ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./"),
    ("WIFI_PASSWORD", "0123456789abcdef" * 4),  # the raw PSK
    ("WIFI_PASSWORD", "0123456789ABCDEF" * 4),
    ("WIFI_COUNTRY", "DE"),
    ("WIFI_COUNTRY", "us"),
    ("WIFI_COUNTRY", "Jp"),
    ("NET_ADDRESS", "192.168.1.50/24"),
    ("NET_ADDRESS", "10.0.0.2/255.0.0.0"),
    ("NET_ADDRESS", "192.168.1.50/32"),
    ("NET_ADDRESS", "10.0.0.0/31"),  # a point-to-point /31 has no network address
    ("NET_ADDRESS", "2001:db8::50/64"),
    ("NET_ADDRESS", "2001:DB8:0:0::50/64"),
    ("NET_GATEWAY", "192.168.1.1"),
    ("NET_GATEWAY", "fe80::1"),
    ("NET_DNS", "1.1.1.1"),
    ("NET_DNS", "1.1.1.1,9.9.9.9"),
    ("NET_DNS", "1.1.1.1 ; 9.9.9.9"),
    ("NET_DNS", "2606:4700:4700::1111, 1.1.1.1"),
    ("NET_DNS", "1.1.1.1 1.1.1.1 " + " ".join(f"10.0.0.{n}" for n in range(1, 8))),
]


BAD = [
    ("WIFI_SSID", "x" * 33, "at most 32"),
    ("WIFI_SSID", "é" * 17, "34 bytes long"),
    ("WIFI_SSID", "Home\x07Net", "control characters"),
    ("WIFI_PASSWORD", "1234567", "has 7 characters; a WPA password has at least 8"),
    ("WIFI_PASSWORD", "x" * 64, "at most 63 (or is a raw key of exactly 64 hex digits)"),
    ("WIFI_PASSWORD", "0123456789abcdeg" * 4, "at most 63"),
    ("WIFI_PASSWORD", "Straße-Passwort", "characters a WPA password cannot have"),
    ("WIFI_PASSWORD", "tab\there-long", "characters a WPA password cannot have"),
    ("WIFI_COUNTRY", "XX", "XX is not an ISO 3166 country code"),
    ("WIFI_COUNTRY", "UK", "UK is not an ISO 3166 country code"),
    ("WIFI_COUNTRY", "00", "world-wide default"),
    ("WIFI_COUNTRY", "DEU", "a two-letter code"),
    ("WIFI_COUNTRY", "Germany", "a two-letter code"),
    ("NET_ADDRESS", "192.168.1.50", "needs its network size"),
    ("NET_ADDRESS", "192.168.1.300/24", "not an IP address"),
    ("NET_ADDRESS", "192.168.1.50/33", "not an IP address"),
    ("NET_ADDRESS", "box.local/24", "not an IP address"),
    ("NET_ADDRESS", "192.168.1.0/24", "address of the network 192.168.1.0/24 itself"),
    ("NET_ADDRESS", "192.168.1.255/24", "broadcast address"),
    ("NET_ADDRESS", "2001:db8::/64", "the network 2001:db8::/64 itself"),
    ("NET_ADDRESS", "127.0.0.5/8", "loopback"),
    ("NET_ADDRESS", "224.0.0.5/24", "multicast"),
    ("NET_ADDRESS", "0.0.0.0/0", "unspecified"),
    ("NET_ADDRESS", "169.254.3.4/16", "link-local"),
    ("NET_GATEWAY", "192.168.1.1/24", "without a /network size"),
    ("NET_GATEWAY", "router", "not an IP address"),
    ("NET_GATEWAY", "0.0.0.0", "unspecified"),  # noqa: S104 - a value, not a bind
    ("NET_DNS", "dns.google", "DNS server 1 is not an IP address"),
    ("NET_DNS", "1.1.1.1, 1.1.1", "DNS server 2 is not an IP address"),
    ("NET_DNS", "127.0.0.53", "loopback"),
    ("NET_DNS", ", ;", "no DNS server"),
    ("NET_DNS", " ".join(f"10.0.0.{n}" for n in range(1, 10)), "at most 8"),
]


# Issue 21: forms that parse as addresses but cannot work where they are written. Each class
# has its own words and fix.
NOT_AN_ADDRESS_HERE = [
    ("NET_ADDRESS", "2001:db8::5%evil/64", "scope id (%evil)", "remove the % and what follows"),
    ("NET_ADDRESS", "::ffff:192.168.1.50/120", "IPv4 address written in IPv6 form", "192.168.1.50"),
    ("NET_ADDRESS", "::192.168.1.50/120", "IPv4-compatible", "write the IPv4 address itself"),
    ("NET_ADDRESS", "fe80::5/64", "link-local", "the address meant for this box"),
    ("NET_ADDRESS", "255.255.255.255/32", "the broadcast address", "meant for this box"),
    ("NET_ADDRESS", "::/0", "unspecified", "meant for this box"),
    ("NET_GATEWAY", "fe80::1%eth0", "scope id (%eth0)", "fe80::1"),
    ("NET_GATEWAY", "::ffff:192.168.1.1", "IPv4 address written in IPv6 form", "192.168.1.1"),
    ("NET_GATEWAY", "::ffff:127.0.0.1", "IPv4 address written in IPv6 form", "127.0.0.1"),
    ("NET_GATEWAY", "255.255.255.255", "the broadcast address", "the router's address"),
    ("NET_GATEWAY", "169.254.0.1", "link-local", "the router's address"),
    ("NET_GATEWAY", "127.0.0.1", "loopback", "the router's address"),
    ("NET_GATEWAY", "ff02::2", "multicast", "the router's address"),
    ("NET_DNS", "fe80::1%lo#evil.example", "scope id (%lo#evil.example)", "fe80::1"),
    ("NET_DNS", "1.1.1.1 2001:db8::53%2", "DNS server 2 (2001:db8::53%2) is", "2001:db8::53"),
    ("NET_DNS", "::ffff:127.0.0.53", "IPv4 address written in IPv6 form", "127.0.0.53"),
    ("NET_DNS", "::127.0.0.53", "IPv4-compatible", "127.0.0.53"),
    ("NET_DNS", "255.255.255.255", "the broadcast address", "a DNS server"),
    ("NET_DNS", "240.0.0.53", "reserved", "a DNS server"),
    ("NET_DNS", "::", "unspecified", "a DNS server"),
    ("NET_DNS", "::1", "loopback", "a DNS server"),
    ("NET_DNS", "224.0.0.251", "multicast", "a DNS server"),
    ("NET_DNS", "fe80::53", "link-local", "a DNS server"),
    ("NET_DNS", "169.254.169.254", "link-local", "a DNS server"),
]
