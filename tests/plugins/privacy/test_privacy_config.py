"""The team's own rules, allowlist and switches, and how bad ones are reported."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devpulse import ConfigError, PrivacyLevel, Request, Side, TaskClass, config_from_mapping
from devpulse.cli import main
from devpulse.plugins.privacy import Scanner, pyast, readers
from devpulse.plugins.privacy import scanner as scanner_module
from devpulse.plugins.privacy.rules import packaged_rules, successors
from tests.plugins.privacy.calls import counted_searches
from tests.support import router_with


def scanner(**privacy) -> Scanner:
    return Scanner(config_from_mapping({"privacy": privacy}).privacy)


def ticket_scanner(pattern: str, **fields) -> Scanner:
    """A scanner with one team rule, `acme-ticket`, of `pattern` and the given fields."""
    rule = {"id": "acme-ticket", "category": "internal", "pattern": pattern, **fields}
    return scanner(rules=[{**rule, "keywords": ["acme-"]}])


def test_user_rules_run_like_packaged_ones() -> None:
    (finding,) = ticket_scanner(r"\bACME-\d{4,}\b").scan("see ACME-48213 for details")
    assert (finding.rule_id, finding.level) == ("acme-ticket", PrivacyLevel.INTERNAL)


def test_a_rule_whose_alternatives_each_hold_the_value_in_their_own_group() -> None:
    s = ticket_scanner(r"ticket (ACME-\d{4,})|(ACME-\d{4,}) is open", groups=[1, 2])
    text = "ticket ACME-1234, and ACME-2345 is open; ACME-3456 alone"
    assert [text[slice(*f.span)] for f in s.scan(text)] == ["ACME-1234", "ACME-2345"]


def test_a_user_rule_can_pass_over_a_columns_cells() -> None:
    """`not_in_column`: a value in a table's column that the header names so is none."""
    s = ticket_scanner(r"ACME-\d{4,}", not_in_column="(?i)old[ _]ticket")
    assert [f.rule_id for f in s.scan("old_ticket,owner\nACME-1234,ana\n")] == []
    assert [f.rule_id for f in s.scan("ticket,owner\nACME-1234,ana\n")] == ["acme-ticket"]


def test_a_user_rule_can_pass_over_a_blocks_values() -> None:
    """`not_under`: a value on a line indented under one that names its block so is none."""
    s = ticket_scanner(r"ACME-\d{4,}", not_under="(?i)^closed:")
    assert [f.rule_id for f in s.scan("closed:\n  - ACME-1234\n  - ACME-2345\n")] == []
    found = s.scan("closed:\n  - ACME-1234\nopen:\n  - ACME-2345\n")
    assert [f.rule_id for f in found] == ["acme-ticket"]


def test_a_user_rule_can_ask_what_precedes_a_match() -> None:
    s = ticket_scanner(r"ACME-\d{4,}", preceded_by="[\\s(]")
    assert [f.rule_id for f in s.scan("ACME-1234 (ACME-2345) xACME-3456 é ACME-4567")] == [
        "acme-ticket",
        "acme-ticket",
        "acme-ticket",
    ]


def test_a_match_turned_down_for_what_precedes_it_is_not_searched_again_byte_by_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a match preceded_by turns down, the search goes on past the next character
    that may precede one: from the next byte, each glued start ("xACME-ACME-...") was read
    again to the end of the run, once per byte."""
    s = ticket_scanner(r"ACME-[A-Z0-9-]{4,}", preceded_by="[\\s(]")
    searches = counted_searches(monkeypatch, "acme-ticket")
    assert s.scan("x" + "ACME-" * 5000) == []
    assert len(searches) <= 2
    assert [f.span for f in s.scan("xACME-ACME-1234 (ACME-2345)")] == [(17, 26)]


def test_a_rule_may_pass_over_matches_too_long_to_read() -> None:
    """max_match_bytes: a match that runs on past it is found, but its value is not read."""
    s = ticket_scanner(r"ticket(?: [a-z]+)* (ACME-\d{4,})", group=1, max_match_bytes=64)
    assert [f.rule_id for f in s.scan("ticket for you ACME-1234")] == ["acme-ticket"]
    assert s.scan("ticket" + " word" * 20 + " ACME-1234") == []
    assert (
        len(
            ticket_scanner(r"ticket(?: [a-z]+)* (ACME-\d{4,})", group=1).scan(
                "ticket" + " word" * 20 + " ACME-1234"
            )
        )
        == 1
    )


def test_a_rule_may_leave_long_texts_alone() -> None:
    """max_text_bytes: a longer text is not searched with the rule; the limit's own length is."""
    s = ticket_scanner(r"ACME-\d{4,}", max_text_bytes=64)
    assert [f.rule_id for f in s.scan("ACME-1234".ljust(64))] == ["acme-ticket"]
    assert s.scan("ACME-1234".ljust(65)) == []
    assert [f.rule_id for f in ticket_scanner(r"ACME-\d{4,}").scan("ACME-1234".ljust(65))] == [
        "acme-ticket"
    ]


def test_a_rule_may_stop_quietly_past_its_allowance_of_candidates() -> None:
    """quiet_overflow: a flood of candidates the rule turns down is no unverified finding, as
    it is by default (an unchecked rest must not read as clean)."""
    flood = "ACME-0000 " * 5000  # each candidate turned down: 0000 is no private address
    fields = {"group": 1, "validator": "private_ip"}
    loud = ticket_scanner(r"ACME-(\d{4})", **fields)
    assert [f.rule_id for f in loud.scan(flood)] == ["acme-ticket:unverified"]
    assert ticket_scanner(r"ACME-(\d{4})", **fields, quiet_overflow=True).scan(flood) == []


def test_a_rule_may_judge_fewer_candidates_than_the_scanners_allowance() -> None:
    """max_candidates: the rule judges that many at most, then reports the rest unverified
    (or stops, with quiet_overflow); a quiet rule passes over candidates its not_after turns
    down up to twice that many, and counts those past it."""
    fields = {"group": 1, "validator": "private_ip"}
    flood = "ACME-0000 " * 30  # each turned down: 0000 is no private address
    assert [
        f.rule_id for f in ticket_scanner(r"ACME-(\S+)", **fields, max_candidates=20).scan(flood)
    ] == ["acme-ticket:unverified"]
    assert ticket_scanner(r"ACME-(\S+)", **fields, max_candidates=40).scan(flood) == []
    quiet = ticket_scanner(
        r"ACME-(\S+)", **fields, max_candidates=10, quiet_overflow=True, not_after="old ACME-$"
    )
    key = "ACME-10.0.0.1"
    assert [f.rule_id for f in quiet.scan("old ACME-0000 " * 25 + key)] == ["acme-ticket"]
    assert quiet.scan("old ACME-0000 " * 31 + key) == []  # 20 passed over, 10 judged: full


def test_allowlist_drops_matching_values() -> None:
    text = "mail jane.roe@globalmail.net"
    assert scanner().scan(text)
    assert scanner(allowlist=[r"^jane\.roe@"]).scan(text) == []


def test_disabled_rules_are_not_run() -> None:
    text = "mail jane.roe@globalmail.net"  # a person's: the rule finds it when it runs
    assert scanner().scan(text)
    assert scanner(disabled_rules=["email-address"]).scan(text) == []


def corpus_texts() -> list[str]:
    path = Path(__file__).resolve().parents[2] / "data" / "privacy" / "corpus.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def test_every_finding_can_be_switched_off_by_its_id() -> None:
    """Each id the scanner reports, the syntax readers' and the Python checks' included, is
    one that disabled_rules accepts, and naming it there ends that finding."""
    code = '```python\nsmtp.login(user, "Xq7vR2pL9zK4!")\n```'
    by_id: dict[str, list[str]] = {}
    everything = scanner()
    for text in [*corpus_texts(), code]:
        for finding in everything.scan(text):
            by_id.setdefault(finding.rule_id.removesuffix(":unverified"), []).append(text)
    assert {"assigned-credential", "py-credential-argument", "email-address"} <= set(by_id)
    for rule_id, texts in by_id.items():
        quiet = scanner(disabled_rules=[rule_id])
        assert not [f for t in texts for f in quiet.scan(t) if f.rule_id == rule_id], rule_id


def test_an_id_a_release_split_or_retired_switches_off_what_took_its_work() -> None:
    command = "redis-cli -h cache -a Xq7vR2pL9zK4 ping"
    assert scanner().scan(command)
    assert scanner(disabled_rules=["cli-password-flag"]).scan(command) == []
    text = 'DB_PASSWORD: "Xq7vR2pL9zK4!"'
    assert scanner(disabled_rules=["generic-credential-assignment"]).scan(text) == []
    assert scanner(disabled_rules=["basic-auth-option"]).scan("curl -u ci:Xq7vR2pL9zK4 x") == []


def test_the_table_readers_of_personal_data_are_switched_off_by_their_ids() -> None:
    ids = "name,passport,dob\nAnn,C01X00T47,1987-03-14\n"
    assert {f.rule_id for f in scanner().scan(ids)} == {
        "table-identity-number",
        "table-date-of-birth",
    }
    quiet = scanner(disabled_rules=["table-date-of-birth"])
    assert {f.rule_id for f in quiet.scan(ids)} == {"table-identity-number"}
    assert "table-date-of-birth" in readers.RULE_IDS


def test_every_successor_names_a_rule_or_a_pass() -> None:
    known = {r.id for r in packaged_rules()} | set(readers.RULE_IDS) | set(pyast.RULE_IDS)
    for old, new in successors().items():
        assert new, old
        assert set(new) <= known, old


def test_the_classifier_can_be_switched_off() -> None:
    router = router_with({"privacy": {"classifier": False}})
    decision = router.route(
        Request.from_prompt("mail ops@globalmail.net", task=TaskClass.REASONING)
    )
    assert decision.side is Side.CLOUD


BAD_PRIVACY = [
    (
        {"rules": [{"id": "x", "category": "secret", "pattern": "(unclosed"}]},
        "privacy.rules[0].pattern: not a valid RE2 pattern",
    ),
    (
        {"rules": [{"id": "x", "category": "secret", "pattern": "(?=lookahead)"}]},
        "privacy.rules[0].pattern: not a valid RE2 pattern",
    ),
    (
        {"rules": [{"id": "x", "category": "gossip", "pattern": "a"}]},
        "privacy.rules[0].category: unknown category 'gossip'",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "not_after": "(?<=x)"}]},
        "privacy.rules[0].not_after: not a valid RE2 pattern",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "not_in_column": "("}]},
        "privacy.rules[0].not_in_column: not a valid RE2 pattern",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "not_under": "a{2,1}"}]},
        "privacy.rules[0].not_under: not a valid RE2 pattern",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "validator": "astrology"}]},
        "privacy.rules[0].validator: unknown validator 'astrology'",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "group": 2}]},
        "privacy.rules[0].group: the pattern has only 0 group(s)",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "(a)|(b)", "groups": [1, 3]}]},
        "privacy.rules[0].groups[1]: the pattern has no group 3 (it has 2)",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "(a)", "group": 1, "groups": [1]}]},
        "privacy.rules[0].groups: give group or groups, not both",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "preceded_by": "[;"}]},
        "privacy.rules[0].preceded_by: not a valid RE2 pattern",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "preceded_by": "\\s*"}]},
        "privacy.rules[0].preceded_by: must match exactly one character",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "preceded_by": "ab"}]},
        "privacy.rules[0].preceded_by: must match exactly one character",
    ),
    (
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "long_prefilter": "yes"}]},
        "privacy.rules[0].long_prefilter: expected true or false",
    ),
    (  # the pattern compiles; in the prefilter set's (?-i:...), \\Q quotes the ")" too
        {
            "rules": [
                {
                    "id": "x",
                    "category": "internal",
                    "pattern": "ACME-\\Q$",
                    "keywords": ["acme-"],
                    "exact_prefilter": True,
                }
            ]
        },
        "privacy.rules[0].pattern (as the prefilter reads it): not a valid RE2 pattern",
    ),
    (  # the trigger compiles; its count cut for a long text's sets ({6,}0) does not
        {"rules": [{"id": "x", "category": "pii", "pattern": "a", "trigger": "{06}0"}]},
        "privacy.rules[0].trigger (as the prefilter reads it): not a valid RE2 pattern",
    ),
    ({"allowlist": ["[bad"]}, "privacy.allowlist[0]: not a valid RE2 pattern"),
    ({"internal_domains": "acme.internal"}, "privacy.internal_domains: expected a list"),
    (
        {"internal_domains": ["acme.internal"], "disabled_rules": ["internal-domian"]},
        "privacy.disabled_rules[0]: no rule has the id 'internal-domian'",
    ),
]


@pytest.mark.parametrize(("privacy", "message"), BAD_PRIVACY)
def test_bad_privacy_config_is_a_clear_error(privacy, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        router_with({"privacy": privacy})


@pytest.mark.parametrize(("privacy", "message"), BAD_PRIVACY)
def test_a_scanner_compiled_on_first_use_refuses_a_bad_config_at_once(privacy, message) -> None:
    """eager=False leaves the packaged rules' compile to the first scan, not the checks."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        Scanner(config_from_mapping({"privacy": privacy}).privacy, eager=False)


def test_a_scanner_compiled_on_first_use_finds_what_an_eager_one_does() -> None:
    privacy = config_from_mapping(
        {
            "privacy": {
                "rules": [{"id": "acme-ticket", "category": "internal", "pattern": r"ACME-\d+"}],
                "internal_domains": ["acme.internal"],
            }
        }
    ).privacy
    texts = [
        "see ACME-48213 on build.acme.internal",
        'AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9x2Lk8Vd"',
        "mail jane.doe@fastmail.com, SSN 536-22-8741",
        "nothing to see here",
    ]
    lazy = Scanner(privacy, eager=False)
    compiled = counted_compiles(lazy)
    with ThreadPoolExecutor(4) as pool:  # threads that all ask first: one compile
        found = list(pool.map(lazy.scan, texts * 4))
    assert len(compiled) == 1
    eager = Scanner(privacy)
    assert found == [eager.scan(t) for t in texts * 4]
    assert all(found[:3])


def test_a_scanner_compiled_on_first_use_compiles_only_the_rules_a_text_needs(
    monkeypatch,
) -> None:
    compiled: list[str] = []
    compile_rule = scanner_module.compile_rule

    def counted(where: str, rule):
        compiled.append(rule.id)
        return compile_rule(where, rule)

    monkeypatch.setattr(scanner_module, "compile_rule", counted)
    lazy = Scanner(config_from_mapping({}).privacy, eager=False)
    lazy.scan("nothing to see here")
    some = len(compiled)
    assert 0 < some < len(packaged_rules()) / 2
    assert lazy.scan('token: "ghp_R4nd0mT0k3nV4lu3Xq9Lm2Zp7Wc5Yb8Nd1Ks6"')
    assert "github-token" in compiled[some:]
    assert len(compiled) == len(set(compiled))  # each once


def counted_compiles(scanner: Scanner) -> list[int]:
    """Record each compile of `scanner`'s rules (a list that grows by one per compile)."""
    calls: list[int] = []
    compile_now = scanner._compile

    def counted(config, **options) -> None:
        calls.append(1)
        time.sleep(0.05)  # long enough that the other threads ask meanwhile
        compile_now(config, **options)

    scanner._compile = counted  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("argv", [["route", "hello"], ["cost"]])
def test_bad_user_pattern_through_the_cli(capsys, tmp_path, argv) -> None:
    """Every command refuses a bad rule, the ones that scan nothing too."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[privacy.rules]]\nid = "x"\ncategory = "secret"\npattern = "(unclosed"\n')
    code = main(["--config", str(cfg), *argv])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1
    assert "privacy.rules[0].pattern: not a valid RE2 pattern" in err
