"""How doctor's verdicts read in a terminal: wrapped between words to its width, each
further line indented under the text it continues."""

from __future__ import annotations

from p2p_transfer.cli.doctor_command import human_lines
from p2p_transfer.doctor.firewall import check_firewall
from p2p_transfer.events import CheckEvent

DETAIL = ("no p2p-transfer device seen; likely causes: this device drops multicast "
          "(see the multicast check)")


def test_lines_wrap_at_the_width_with_a_hanging_indent() -> None:
    check = CheckEvent("devices", "warn", DETAIL, "start `p2p-transfer receive` on the other "
                       "device; if it still isn't seen, send by its ticket")
    lines = human_lines(check, 80)
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("! devices          no p2p-transfer device seen;")
    advice_at = next(i for i, line in enumerate(lines) if "→" in line)
    detail_lines = lines[1:advice_at]
    assert detail_lines  # it did need wrapping
    # Words are whole (no "multic" / "ast"), and each text reads back as it was.
    assert " ".join(x.strip() for x in lines[:advice_at]).removeprefix("! devices ").strip() \
        == DETAIL
    assert all(line.startswith(" " * 19) and line[19] != " " for line in detail_lines)
    assert all(line.startswith(" " * 21) and line[21] != " " for line in lines[advice_at + 1:])


def test_lines_are_not_wrapped_when_piped() -> None:
    check = CheckEvent("devices", "warn", DETAIL, "send by its ticket")
    assert human_lines(check) == [f"! devices          {DETAIL}",
                                  "                   → send by its ticket"]


def test_the_firewall_advice_names_the_fixed_port_form() -> None:
    check = check_firewall(["nftables drops mDNS (UDP 5353)"], True)
    assert "`receive --bind 0.0.0.0:41641`" in check.advice
    assert "prints the port" not in check.advice
