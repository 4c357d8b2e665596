"""Inputs built to stall a backtracking regex engine, for every pattern family that reads
request text: the rules and their keyword and trigger sets, the value checks, the
Python-aware checks and the task classifier. tests/plugins/privacy/test_redos.py runs them.

An input is a lead-in that gets a pattern going (a keyword, a trigger, a name bound to a
string), a long run of a unit that the pattern repeats, and a tail that makes the match
fail: the shape that makes a backtracking engine try every way of splitting the run, as
`password = "` + `_.` * 26 + `_!"` did to CODE_EXPRESSION (27 s for 62 characters).

Run: `python -m tests.plugins.privacy.pathological [GROUP...]` (default: all of GROUPS). It
prints each family's name before running it, so a run killed on a timeout names the one
that hung.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

from devpulse import Request, Router, config_from_mapping, make_plugin_manager
from devpulse.plugins.privacy import Scanner, checks, pyast
from devpulse.plugins.privacy.rules import packaged_rules
from devpulse.plugins.privacy.scanner import AST_TRIGGERS, MAX_JUDGED_CHARS
from devpulse.plugins.task_classifier import HEAD_CHARS, TaskClassifier

CONFIG = {
    "privacy": {
        "internal_domains": ["acme.internal", "acme-corp.com"],
        "internal_packages": ["acme_"],
        "client_names": ["Globex", "Initech"],
    }
}
LONG = 64 * 1024  # the reported families, and each check on its own
RUN = MAX_JUDGED_CHARS + 128  # the cross products: past the scanner's cut, so checks see all
TAIL = "!"  # in no class that a value pattern ends on
CHAIN = 512 * 1024  # long enough that a reader quadratic in it takes seconds
LONG_CHAIN = 2 * 1024 * 1024
CHAINS = (
    *("pw=", "a_pass=", "pass||", "${pass:-", "pw=" * 33 + " ", "x.pass||" * 12 + "\n"),
    *("a_pw=x1 ", "- name: pass\n  value: ", '"name":"pw","value":"', '<e key="pw">x</'),
    *("setx pw ", "set -x pw pw ", "PuTTY-User-Key-File-2:\n", '.pw("', ".pw('x')"),
    *("ConvertTo-SecureString 'x' ", "auth=(", 'auth=("a", "'),
    *("rootpw x\n", "identified by '", "IDENTIFIED BY x ", "pbkdf2_sha1$100$a$", "{SSHA}a"),
    *('pw: "${pw:-', 'pw="${' + "a" * 190 + '}" ', '"name":"pw","t":"x",', "- name: pw\n  t: x\n"),
    *('"Name": "/pw", "Type": "S", "Value": "', "name: pw\nt: x\nvalue: ", "Cookie: a=b; "),
    *("cookie: sid=", "Cookie: x"),
    *("<pw><![CDATA[a]", "<pw><![CDATA[", '<e key="pw"><![CDATA[x]]'),
    *("pw: |\n", "pw: >-\n ", "  pw: |\n  ", "pw: |\n  a\n", "pw: |2-\n" + " " * 300),
    # tables: headers, rows, unclosed quotes; SQL rows unclosed, or of doubled quotes
    *("a,pw\n", "pw,a\n1,", "| pw |\n", "| a | pw |\n|---|---|\n", 'a,pw\n"x,', "pw,\n,\n"),
    *("a\tpw\n", "token, key, and\n", "x,API Key,y\n" + "a," * 40 + "\n"),
    *("INSERT INTO t (pw) VALUES (", "INSERT INTO t (a, pw) VALUES ('x', '"),
    *("INSERT INTO t (pw) VALUES ('a'), (", "INSERT INTO t (pw) VALUES (f(g(", "''"),
    # personal data's columns: ids and dates of birth, and INSERTs whose columns only look so
    *("a,dob\n", "dob,a\n1,", "| a | dob |\n|---|---|\n", "ssn,dob\n1987-03-14,"),
    *("INSERT INTO t (a, dob) VALUES ('x', '", "INSERT INTO t (business) VALUES (1), ("),
    *("author=x ", '"author": "x", ', "key=lambda ", "-H 'Accept: x' "),  # names passed over
    *("#define pw ", "pw[1]=", "pw[] = a::b(", "pw: &'a ", "pw { get; ", "pw { get; } = "),
    *("ssh-keygen zip -P abcdefgh ", "net use /user:x abcdefgh ", "htpasswd -a ", "x-u a:b "),
    *("echo abcd | ", ":*:*:*:", "PuTTY-User-Key-File-2: a\\n"),
    *("login -p abcdefgh ", "mongo publish -p x "),
    *("nxc a b -p abcdefgh ", "xfreerdp /p:abcdefgh ", "psexec.py a:b@"),
    "net use \\\\a\\b abcdefgh ",
    # R's arrows, tuples, keyword pairs, Tcl's and Lisp's set forms, property lists (stop 43)
    *("pw <- ", "pw <<- x", "{pw, ", "{:pw, '", " :pw ", '(:pw "', "set pw ", "set ::env(pw) "),
    *("(setq pw ", '(setenv "pw" ', "(defparameter *pw* ", "<key>pw</key><string>", "<key>"),
    *("| a | b | key | value |\n", "| a | key | value |\n|---|---|---|\n| x | pw | "),
)
# Matches longer than the parsed window, whose values therefore look short: never searched
# again (searching them again cost 2 s per MB, 8 s for these 2 MB). And one tool's name, then
# another option: with both in one pattern, each candidate's search read on to the line's end
# (3 s per MB).
LONG_CHAINS = (
    *("a" * 950 + "pw=", "pw:" + "T" * 920 + "="),
    # quoted values past the parsed window: read again with their middle cut out
    *('pw="' + "a" * 1100 + '" ', 'pw="' + "a" * 1100 + "\n", "<pw>" + "a" * 1100 + "</"),
    # a tool's name run into a word: a match turned down for the character before it was
    # searched for again from the next byte, each search reading on to the line's end
    *("xredis-cli ", "xsqlcmd ", "xopenssl ", "xlogin ", "xssh-keygen "),
    *("redis-cli -p abcdefgh ", "sqlcmd --password abcdefgh ", "openssl vault login ldap "),
    *("hydra ", "xfreerdp ", "net use \\\\a ", "impacket-x a:"),
    # each tool's name with an option after it: every tool's rule matches the whole line
    "redis-cli -x nxc -x xfreerdp -x psexec.py -x sqlcmd -x zip -x ",
)
# the options that those tools' rules read on to, once, at the end of the line
OPTIONS_AT_END = (
    " ".join(f"{o} Zq7mK2pLx9Wr" for o in ("-a", "-P", "-k", "-p", "-N", "-w", "/p:"))
    + " a:Zq7mK2pLx9Wr@b\n"
)

# What the patterns repeat: each character class they use, and pairs that two overlapping
# alternatives can both take (`_.`: both kinds of CODE_EXPRESSION segment took `_`).
UNITS = (
    *("a", "A", "7", "_", "-", ".", "/", "+", "=", " ", "\n", ":", "@", "é"),
    *("_.", "a.", "Ab.", "a-", "0 ", "a@"),
    # digit groups, brackets and IBAN-like tokens: what the phone, card and IBAN rules repeat
    *("(0) ", "12-", "AB12 ", "1234 "),
)
MORE_UNITS = (
    *("\t", "%", "~", "A.", "AB.", "Ab", "_1.", "a_", "a:", "0-", "0."),
    *("ey", "Q~", "\\n", "# c\n", " \n"),
)
# Rules that no keyword announces: lead-ins (and closers) that pass each one's trigger.
TRIGGER_LEADS: dict[str, tuple[tuple[str, str], ...]] = {
    "twilio-api-key": (("SK", ""), ("SK0123456789abcdef0123456789abcdef", "")),
    "credentials-in-url": (("postgres://user:", "@db"), ("https://", ":pw@host")),
    "credential-call-argument": (('login("user", "', '")'), ("connect(", ")")),
    "basic-auth-key-as-user": (('auth=("', '", "")'), ('HTTPBasicAuth("', '", "X")')),
    "token-set-in-prose": (("set the api key to ", ""), ("update `ACME_TOKEN` to `", "`")),
    "password-in-prose": (
        *(("password is ", ""), ("passphrase: ", ""), ("password - ", "")),
        ("the password for the staging db is ", ""),
    ),
    "token-in-prose": (
        *(("the api key is ", ""), ("token\t", ""), ("SECRET ", "")),
        *(("token - ", ""), ("api key -> ", ""), ("the token for staging is ", "")),
        *(("the api key for the demo = ", ""), ("the token today, the new one is ", "")),
    ),
    "token-below-sentence": (("the key below.\n", ""), ("API key for staging, rotate it:\n", "")),
    "identity-number": (("Passport No: ", ""), ("NHS number ", ""), ("SIN ", ""), ("DNI: C", "")),
    "wallet-key-argument": (('new Wallet("0x0123abcd', '")'), ("Account.from_key('", "')")),
    "token-in-url": (("https://Zq8rT2mXwP4kL9vB3nYc@", ""), ("git+https://0123456789abcdef@", "")),
    "email-address": (("a@", ".io"), ("mail a@b.", "")),
    "email-address-intl": (("ü@", ".de"), ("mail a@ü.", ""), ("山田@", "")),
    "phone-e164": (("+1 ", ""), ("+44", "")),
    "phone-cn-mobile": (("137 1431 ", ""), ("139-2022-", "")),
    "phone-national": (("(415) 555-", ""), ("020 ", ""), ("0 (", ""), ("AB12 ", "")),
    "credit-card": (("4539 1488 0343 ", ""), ("4539148803436467", "")),
    "iban": (("GB82 WEST ", ""), ("DE89", "")),
    "us-ssn": (("123-45-", ""), ("078-05-1120", ""), ("078 05 ", ""), ("078.05.", "")),
    "italian-fiscal-code": (("BNCFNC79B03H501U", ""), ("BNCFNC79B03H501", "")),
    "chinese-resident-id": (("11010519880714874", ""), ("11010519491231002X", "")),
    "korean-resident-number": (("880321-1362416", ""), ("880321-136241", "")),
    "brazilian-cpf": (("184.943.005-55", ""), ("184.943.005-", "")),
    "uk-national-insurance-number": (("JT 48 72 91 B", ""), ("NP 30 58 12 C", "")),
    "spanish-dni": (("Y4829163M", ""), ("X1234567", "")),
    "mailgun-api-key": (("key-", ""), ("key-0123456789abcdef", "")),
    "airtable-token": (("patAbcdefghijklmn.", ""), ("patAbcdefghijklmn.0123456789abcdef", "")),
    "prefixed-token": (("nfp_", ""), ("dckr_pat_", ""), ("pcsk_aB3dE_", "")),
    "discord-bot-token": (
        ("MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.", ""),
        ("N" + "a" * 23 + ".a1b2c3.", ""),
    ),
    "asana-token": (("1/1234567890123456:", ""), ("2/1234567890123456/1234567890123", "")),
    "street-address": (
        ("4821 Maple Ridge Dr, Austin, TX 78745 ", ""),
        ("Lindenstraße 42, 10969 Berlin ", ""),
        ("10 Baker Street, London NW1 6XE ", ""),
        ("Via Garibaldi 12, 00184 Roma ", ""),
        ("C/ Mayor 12, 3º B\n28013 Madrid ", ""),
        ("Keizersgracht 123, 1015 CJ Amsterdam ", ""),
        ("Drottninggatan 53, 111 21 Stockholm ", ""),
        ("Karl Johans gate 1\n0154 Oslo ", ""),
        ("ul. Marszałkowska 1, 00-950 Warszawa ", ""),
    ),
    "ntlm-hash-dump": (
        ("admin:500:" + "a" * 32 + ":" + "b" * 32 + ":::", ""),
        ("svc:1001:" + "0" * 32 + ":" + "f" * 32 + ":::\n", ""),
    ),
    "passwd-des-crypt": (
        ("oracle:jiSu.9ir21pVR:1001:100:", ""),
        ("svc:abJnggxhB/yWI:1000:1000:", "\n"),
    ),
    "mexican-curp": (("BOXW310820HNERX", ""),),
    "mexican-rfc": (("GODE561231GR", ""),),
    "thai-citizen-id": (("3-1006-00445-63-", ""),),
    "pakistani-cnic": (("34201-0891231-", ""),),
    "argentine-cuit": (("20-05536168-", ""),),
    "indian-pan": (("ACUPA7085", ""),),
    "micr-account": (
        ("⑆011000015⑆ 1234", ""),
        ("A011000015A 1234", "C"),
        ("T011000015T1234", ""),
    ),
    "netntlmv2-hash": (
        ("jdoe::CORP:1122334455667788:" + "8a" * 16 + ":" + "01" * 24, ""),
        ("admin::WKSTN:" + "0" * 16 + ":" + "f" * 32 + ":" + "0" * 48, "\n"),
    ),
}
# Starts in the case their patterns want (the keywords are lower case).
TOKEN_LEADS = (
    *("CONFIDENTIAL", "PROPRIETARY", "-----BEGIN PRIVATE KEY-----", "-U ", "--USER"),
    *("AKIA", "AIza", "SG.", "T3BlbkFJ", "sk-ant-api03-", "pypi-AgEIcHlwaS5vcmc", "eyJhbGci.ey"),
    *("-----BEGIN RSA PRIVATE KEY-----\n", "AccountKey=", "SharedAccessKey=", "Authorization: "),
    *("MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.", "ZXlK", "AGE-SECRET-KEY-1", "dt0c01.", "pk."),
    *("kind: Secret\ndata:\n  k: ", "-H 'Authorization: Basic ", "--api-key ", "<apiToken>"),
    "<apiToken><![CDATA[",
    *("APPKEY[16] = { 0x", "network_key: [1, ", "key := []byte{0x1, "),
    *("Name  Password\n----  --------\n", "a password\n- --\n日", "[Passwords]\n"),
    *('System.setProperty("API_TOKEN", "', 'if ("', 'curl -u "', 'var dbPassword string = "'),
    *("jdbc:sqlserver://db;user=sa;password=", "redis://:", "DEPLOY_TOKEN ?= "),
    *("Bearer ", '"auth": "', "-u user:", 'define("DB_PASSWORD", "', '<add key="password" '),
    *("AWS_SECRET_ACCESS_KEY=", "DOB: ", "SSN ", "x.acme.internal", "acme_", "Globex"),
    *("string Password { get; ", "#define API_TOKEN ", 'let password = String::from("'),
    *("create secret generic x --from-literal=k=", "gh secret set X --body ", "secrets set "),
    *("- name: ZENROWS\n  value: ", '{"name": "ZENROWS", "value": "', "$ echo $ZENROWS\n"),
)
# The literal each task-classifier alternative starts with.
TASK_LEADS = (
    *("review this ", "code review", "critique", "audit my ", "refactor", "rename"),
    *("extract the ", "clean up", "simplify this", "summarize", "summary of", "tl;dr"),
    *("draft", "write an ", "step-by-", "step by ", "design a ", "trade-off", "root cause"),
    *("formally verif", "plan", "steps", "multi-step", "then", "<|fim_", "<fim_", "<PRE>", ""),
)


def runs(size: int, units: tuple[str, ...] = UNITS) -> Iterator[tuple[str, str]]:
    """(unit, the unit repeated to `size` characters and the failing tail)."""
    for unit in units:
        yield unit, unit * (size // len(unit)) + TAIL


def rule_leads() -> list[tuple[str, str]]:
    """Every keyword (bare and bound to a string), trigger lead-in and token start."""
    words = {k for rule in packaged_rules() for k in rule.keywords} | set(AST_TRIGGERS)
    words.add("pass")  # the word of scanner.AST_TRIGGER_PATTERNS
    words |= {n.lower() for names in CONFIG["privacy"].values() for n in names}
    leads = {(w, "") for w in words} | {(w + '="', '"') for w in words}
    leads |= {lead for leads in TRIGGER_LEADS.values() for lead in leads}
    leads |= {(t, "") for t in TOKEN_LEADS}
    return sorted(leads)


def rule_texts() -> Iterator[tuple[str, str]]:
    for lead, closer in rule_leads():
        for unit, run in runs(RUN):
            yield f"{lead!r} + {unit!r}", lead + run + closer
    storm = " ".join(sorted({k for r in packaged_rules() for k in r.keywords}))
    yield "keyword storm", storm * (LONG // len(storm))
    # Candidates one after another: a bare value that is a name itself is searched again
    # (`x = env.TOKEN ?? "..."`), so a chain with no blank, or no line end, must cost each
    # candidate no more than a name's length.
    for unit in CHAINS:
        yield f"chain {unit!r}", unit * (CHAIN // len(unit))
    for unit in LONG_CHAINS:
        yield f"long chain {unit[:8]!r}...", unit * (LONG_CHAIN // len(unit)) + OPTIONS_AT_END
    for lead, closer in (('password = "', '"'), ("token: '", "'"), ("secret=", "")):
        for unit, run in runs(LONG, ("_.", "a.", "A.", "Ab.", "_1.", "a-", "a")):
            yield f"{lead!r} + {unit!r} x {LONG}", lead + run + closer
    # Escaped documents, read again unescaped (plain.unescaped), at every depth, and text
    # full of the characters read as others or as nothing (plain.plain_text).
    escaped = ('\\"', "\\a", "\\\\", '{\\"password\\": \\"', "\\n" + "x" * 40, '\\\\\\"a')
    for unit in (*escaped, "a\u00ad", "\u00a0", "a\u200b\u00a0", "\uff21\u200d"):
        yield f"escapes {unit!r}", '\\"' + unit * (CHAIN // len(unit))
    # Prose with the words for a password or a key and no verb or colon after them: each
    # such word once read on to the text's end (a review's input)
    for unit in (
        "la clé administrateur du serveur est dans le coffre. ",
        "das Passwort für den Benutzer wurde geändert und das Passwort Kennwortänderung ",
    ):
        yield f"prose {unit[:20]!r}", unit * (LONG // len(unit))
    # URL encoding, read again decoded (plain.url_decoded), twice encoded, a line at a time
    # a GitHub Actions step's lines between its command and what it printed, again and again
    unit = "kubectl get secret x | base64 -d\nshell: /usr/bin/bash -e {0}\n##[endgroup]\n"
    yield "CI step headers", unit * (CHAIN // len(unit))
    for unit in ("%40", "%2B1", "a%3D", "%2540", "%2\n", "x%20y%0A\n", "%C3%A9%2F"):
        yield f"url escapes {unit!r}", "%2F" + unit * (CHAIN // len(unit))
    # Numbered lines, read again without their numbers (plain.without_gutters): short
    # lines, and lines that almost hold a number (blanks and digits without the tab)
    for unit in (
        "1\ta\n",
        "     12→x\n",
        "  3   │ p\n",
        "          1234567 \n",
        "1\t\n",
        "2024-04-24T17:00:35.5044891Z $ echo $TOKEN\n",  # a CI log's time stamps
        "2024-04-24T17:00:35.50",
    ):
        yield f"numbered lines {unit!r}", "1\tx\n2\ty\n" + unit * (CHAIN // len(unit))


def python_texts() -> Iterator[tuple[str, str]]:
    """Fenced Python whose literals, names and comments are long runs."""
    shapes = (
        ('password = "', '"'),
        ('client.login("user", "', '")'),
        ('url = f"postgres://', ':{password}@db.prod/app"'),
        ('{"password', '": "x9$Kq2mPz!"}'),
        ("# Confidential ", ""),
        ("# ", " all rights reserved"),
    )
    for lead, closer in shapes:
        for unit, run in runs(RUN):
            yield f"{lead!r} + {unit!r}", f"```python\n{lead}{run}{closer}\n```"
    for unit, run in runs(LONG, ("_.", "a.", "A.", "Ab.", "_1.", "a-")):
        yield f"password = {unit!r} x {LONG}", f'```python\npassword = "{run}"\n```'
    # What the pass weighs before it parses, repeated: f-strings, calls, literals, comments.
    for unit in ('f"', '#f"', "login(,(", "token='a'#", "#password='a' ", "password: 'x "):
        yield f"clues {unit!r}", f"```python\nkey = 1\n{unit * (LONG // len(unit))}\n```"
    for unit in ("a", "A", "_", "7", "Ab", "a_", "_1"):
        name = "password" + unit * (RUN // len(unit))
        yield f"password + {unit!r} = ...", f'```python\n{name} = "x9$Kq2mPz!"\n{name}_url = 1\n```'


Call = tuple[str, Callable[[], object]]


def check_calls() -> Iterator[Call]:
    """Each value check on long values, led in so that each of its patterns runs.

    The checks that use patterns see 64 KB; the others (digit counts and checksums) 4 KB.
    """
    every: dict[str, Callable[[str], object]] = {
        **checks.VALIDATORS,
        "is_placeholder": checks.is_placeholder,
        "preview": checks.preview,
        "char_classes": checks.char_classes,
    }
    patterned = {"credential", "strong_credential", "authorization", "email", "is_placeholder"}
    patterned |= {"preview", "char_classes"}
    for name, check in every.items():
        for unit, run in runs(LONG if name in patterned else RUN, UNITS + MORE_UNITS):
            yield f"{name}({unit!r})", _call(check, run)
    # Leads into CODE_EXPRESSION, REFERENCE, PLACEHOLDER, NON_PERSONAL_EMAIL, PUBLIC_PREFIX.
    leads = ("/", "./", "~/", "$", "${", "$(", "op://", "ENC[", "os.getenv", "settings.")
    leads += ("your-", "{{", "<", "%(", "git@", "a@", "a@b.", "-----BEGIN ", "sk-ant-", "AKIA")
    for lead in leads:
        for unit, run in runs(RUN):
            for name in ("credential", "email", "strong_credential"):
                yield f"{name}({lead!r} + {unit!r})", _call(checks.VALIDATORS[name], lead + run)
            yield f"preview({lead!r} + {unit!r})", _call(checks.preview, lead + run)


def prose_calls() -> Iterator[Call]:
    """The first-statement test and the credential-name test on long runs."""
    for lead in ("", "x", "x ", "x:", "# c\n", "\n", "  ", "rb"):
        for unit, run in runs(LONG, UNITS + MORE_UNITS):
            yield (
                f"opens_with_prose({lead!r} + {unit!r})",
                _call(pyast.opens_with_prose, lead + run),
            )
    for lead in ("password", "token_", "api_key", "x"):
        for unit, run in runs(LONG, UNITS + MORE_UNITS):
            name = lead + run + "_url"
            yield f"is_credential_name({lead!r} + {unit!r})", _call(pyast.is_credential_name, name)


def _call(check: Callable[[str], object], value: str) -> Callable[[], object]:
    return lambda: check(value)


def task_requests() -> Iterator[tuple[str, Request]]:
    tools = ({"name": "run_shell", "description": "run a command", "input_schema": {}},)
    for lead in TASK_LEADS:
        for unit, run in runs(2 * HEAD_CHARS, UNITS + MORE_UNITS):
            yield f"task {lead!r} + {unit!r}", Request.from_prompt(lead + run, tools=tools)


def route_prompts() -> Iterator[tuple[str, str]]:
    """The prompt from the report, through the whole public pipeline."""
    for segments in (26, 28, 1000, LONG // 2):
        yield f"route password _. x {segments}", 'password = "' + "_." * segments + '_!"'
    yield "route fenced password _.", '```python\npassword = "' + "_." * (LONG // 2) + '_!"\n```'


def run(group: str) -> int:
    """Classify every input of `group`, naming each one first; returns how many ran."""
    config = config_from_mapping(CONFIG)
    calls: Iterator[Call]
    if group in ("rules", "python"):
        scan = Scanner(config.privacy).scan
        texts = rule_texts() if group == "rules" else python_texts()
        calls = ((name, _call(scan, text)) for name, text in texts)
    elif group == "checks":
        calls = check_calls()
    elif group == "prose":
        calls = prose_calls()
    elif group == "task":
        classify = TaskClassifier(config.classify).classify
        calls = ((name, lambda r=r: classify(request=r)) for name, r in task_requests())
    elif group == "route":
        router = Router(config, plugin_manager=make_plugin_manager(config, entry_points=False))
        calls = ((name, _call(router.route, prompt)) for name, prompt in route_prompts())
    else:
        raise SystemExit(f"unknown group {group!r} (expected one of {', '.join(GROUPS)})")
    count = 0
    for name, call in calls:
        print(name, flush=True)
        call()
        count += 1
    return count


GROUPS = ("route", "checks", "prose", "python", "task", "rules")


if __name__ == "__main__":
    for group in sys.argv[1:] or GROUPS:
        print(f"done: {group}, {run(group)} inputs", flush=True)
