"""Syntax readers: credentials bound to a name in the other syntaxes people paste.

The Python-aware pass (pyast.py) parses Python. Prompts also carry JSON, YAML, INI and .env
files, XML, Makefiles, Go, Java, Kotlin, C# and PHP, shell commands and connection strings,
often one inside another (an .ini file quoted in a JSON string). Parsing each is neither
cheap nor safe on fragments, so each reader here is one RE2 pattern that finds the
name-operator-value shape the syntaxes share, and a little Python that judges the name and
the value. RE2 keeps every reader linear in the input; the Python work is per candidate and
bounded by the scanner's caps.

The readers:
- `assignment`: NAME op VALUE for the operators of those languages (=, :, :=, ::=, :::=,
  ?=, +=, .=, =>, ==, !=, ||=, ??=; also `setProperty("NAME", "value")` and
  `"value" == NAME`), with a type between (`var name string =`, `val name: String =`,
  `NAME: &str =`, `name[33] =`, `Name { get; set; } =`), the value quoted or bare, or
  `#define NAME value`; a bare value ends at a backslash, so `"NAME=value\\nNEXT=1"` in a
  JSON string reads as INI.
- `xml-element`: <nameToken> value </nameToken>, on one line or several, the value bare
  or in a CDATA section.
- `curl`: `-u`/`--user user:password` in any quoting, and `-H`/`--header 'Name: value'`.
- `secret-command`: what a command that stores a secret is given, whatever its name:
  `kubectl create secret generic NAME --from-literal=KEY=VALUE`, `gh secret set NAME --body
  VALUE`, `az keyvault secret set ... --value VALUE`, `vault kv put PATH KEY=VALUE`,
  `fly secrets set KEY=VALUE`.
- `printed-secret`: in a terminal's transcript, the line a command printed a secret on
  (`echo $ZENROWS`, `gcloud secrets versions access latest --secret=x`, `op read ...`).
- `table`: a column named for a credential in a CSV's or a markdown table's header, and in
  SQL's `INSERT INTO t (name, password) VALUES (...)`: each row's value in it. The same for
  a column named for a personal id (`table-identity-number`) or a date of birth
  (`table-date-of-birth`), each row's value judged by its check in pii.py.

Connection strings (`jdbc:...;password=...`, Azure Redis `,password=...,`) are the
`connection-string-password` rule's, and URLs with user info `credentials-in-url`'s.
"""

from __future__ import annotations

import base64
import itertools
import unicodedata
from collections.abc import Callable, Container, Iterator, Sequence
from typing import NamedTuple

import re2

from devpulse.plugins.privacy import pii
from devpulse.plugins.privacy.checks import (
    MAX_NAME_CHARS,
    PASSWORD_WORDS,
    authorization,
    cache_key,
    credential_name_strength,
    encoded_public_key,
    human_password,
    hyphenated_password,
    is_placeholder,
    is_uuid,
    json_unescaped,
    key_by_look,
    looks_like_credential,
    method_call,
    name_words,
    names_a_file,
    names_a_look_alike,
    names_a_password,
    names_no_key,
    password_value,
    public_prefix,
    published_key,
    spaced_password,
    strong_credential,
    token_like,
)
from devpulse.plugins.privacy.spans import (
    FIRST_PARSED_BYTES,
    MAX_PARSED_BYTES,
    NOTHING_REPORTED,
    PatternSet,
    Reported,
    Spans,
    TwoPass,
    first_set,
    found_in,
    match_spans,
    search_parsed,
    search_spans,
)

# The keyword a credential's name carries somewhere (checked word by word afterwards).
_NAME_WORD = r"(?i:pass|pw|secret|token|key|credential|cred|auth)"
_VALUE = (
    # a conversion around a literal: []byte("..."), String("..."), Rust's String::from("...")
    r"(?:[\w.:\[\]]+\()?"
    r"(?:[rbuRBU@]{0,2}(?:\"(?P<dq>(?:[^\"\\\n]|\\.)+)\""  # a string prefix: r"", b'', @""
    r"|'(?P<sq>[^'\n]+)'"
    r"|`(?P<bq>[^`\n]+)`)"
    # bare, but not a `${...}` expansion: the search goes on inside it (`${NAME:-default}`),
    # nor a URL's `//` after its scheme (`otpauth://`, `tokenserver://`: no name, no value;
    # an unquoted base64 value that starts with `//`, one in 4,096, is lost with it)
    r"|(?P<bare>(?:[^\s\"'`,;&\\<$/]|/(?:[^\s\"'`,;&\\</]|$)|\$(?:[^\s\"'`,;&\\<{]|$))"
    r"[^\s\"'`,;&\\<]*))"
)
ASSIGNMENT = TwoPass.compile(
    (
        r"(?P<decl>(?:var|val|let|const)[ \t]+)?"
        rf"(?P<name>[\w$@.-]*{_NAME_WORD}[\w.-]*)"
        # the end of a quoted key, of cfg[name] or of cfg["name"]; C's array, char pw[33];
        # Nim's export mark, `apiKey* = "..."`
        r"(?P<close>[\"'`]?\]?|\[[0-9]*\]|\*)"
        # a declared type: `val name: String =` (Kotlin, TypeScript), `var name string =` (Go),
        # a reference, `const NAME: &'static str =` (Rust); or C#'s auto-property,
        # `string Name { get; set; } =`
        r"(?:[ \t]*:[ \t]*&?(?:'\w+[ \t]+)?[A-Za-z_][\w.*\[\]<>?]*"
        r"|[ \t]+(?P<gotype>[A-Za-z_][\w.*\[\]]*)|[ \t]*\{[ \t]*get;[^{}\n]*\})?"
        # JavaScript's, Ruby's and PHP's assignments if unset (`??=`, `||=`) are assignments,
        # and so are R's arrows (`api_key <- "..."`)
        r"[ \t]*(?P<op>=>|:::=|::=|:=|\?=|\+=|\.=|!==|===|!=|==|=|:|\|\|=|\?\?=|\|\||\?\?"
        r"|<<-|<-)"
        r"(?P<space>[ \t]*)" + _VALUE
    ).encode()
)
# An element's text: a word, or one in a CDATA section (`<![CDATA[...]]>`, where a password's
# < & > need no escaping); a ] in it is allowed but for the section's closing ]].
_ELEMENT_TEXT = (
    r"(?:<!\[CDATA\[[ \t]*(?P<cdata>(?:[^\]\s]|\][^\]\s])+)[ \t]*\]\]>|(?P<value>[^<>\s]+))"
)
XML_ELEMENT = TwoPass.compile(
    (
        rf"<(?P<name>[\w.:-]*{_NAME_WORD}[\w.:-]*)(?:[ \t][^<>\n]*)?>"
        r"[ \t\r\n]*" + _ELEMENT_TEXT + r"[ \t\r\n]*</"
    ).encode()
)
# A record that names its value in a field of its own: Kubernetes' `- name: DB_PASSWORD` then
# `value: ...` on the next line, Spring Boot's failure report (`Property: app.api-token`, then
# `Value: "..."`), JSON's `{"name": "password", "value": "..."}`, XML's
# `<property name="password" value="..."/>`, CloudFormation's ParameterKey/ParameterValue,
# the AWS CLI's SSM parameter (`"Name": "/prod/db/password", "Type": ..., "Value": ...`),
# az's Key Vault secret (`"name": "sql-admin-password", "tags": {}, "value": ...`).
NAMED_PAIR = TwoPass.compile(
    (
        r"(?i:[\w]*(?:name|key|property))[\"']?[ \t]*[:=][ \t]*[\"']?"
        rf"(?P<name>[\w./-]*{_NAME_WORD}[\w./-]*)[\"']?[ \t]*,?"
        # up to two fields between (`"Type": "SecureString",`), each on this line or the
        # next, then the value's field (no counted repeats here: they would multiply the
        # program that reads each match's groups, and a flood of matches then costs 50% more)
        r"(?:[ \t]*\r?\n?[ \t]*[\"']?[\w-]+[\"']?[ \t]*:[ \t]*"
        r"(?:\"[^\"\n]*\"|'[^'\n]*'|[\w.-]+|\{[^{}\n]*\}|\[[^\[\]\n]*\])[ \t]*,?){0,2}"
        r"(?:[ \t]*|[ \t]*\r?\n[ \t]*(?:[+~-][ \t]+)?)"  # a plan's or a diff's mark: `+ value`
        r"[\"']?(?i:[\w]*value)[\"']?[ \t]*[:=][ \t]*" + _VALUE
    ).encode()
)
# `.password("...")`, `setApiKey("...")`, `withToken('...')`: a setter or a builder's method
# named for a credential, given one literal.
SETTER_CALL = TwoPass.compile(
    (
        rf"(?:^|[^\w$])(?P<name>[\w$]*{_NAME_WORD}[\w$]*)[ \t]*\([ \t]*"
        r"(?:\"(?P<dq>(?:[^\"\\\n]|\\.)+)\"|'(?P<sq>[^'\n]+)')"
        r"(?:\.(?:toCharArray|getBytes)\(\))?[ \t]*\)"  # Java's char[] and byte[] forms
    ).encode()
)
# A paren-less call that is its line's one statement, a name then a quoted literal: Gradle's
# Groovy (`storePassword 'x'` in signingConfigs), Chef's resources and other Ruby DSLs
# (`password 'x'`). The line ends after the literal: a sentence goes on.
DSL_CALL = TwoPass.compile(
    (
        rf"(?m:^)[ \t]*(?P<name>[\w$]*{_NAME_WORD}[\w$]*)[ \t]+"
        r"(?:\"(?P<dq>(?:[^\"\\\n]|\\.)+)\"|'(?P<sq>[^'\n]+)')[ \t]*;?[ \t]*"
        r"(?:(?://|#)[^\n]*)?(?m:\r?$)"  # a comment may end the line
    ).encode()
)
# `setx API_KEY "..."` (Windows), `set -gx API_KEY ...` (fish), `#define API_KEY "..."` (C's
# preprocessor), PowerShell's `Set-Item -Path Env:API_KEY -Value '...'` (and New-Item), csh's
# and Apache's `setenv API_KEY ...`, CMake's `set(API_KEY "..." CACHE STRING ...)`, Tcl's
# `set api_token "..."` (an array's element too: `set ::env(DB_PASSWORD) "..."`): a command,
# then name and value.
SET_COMMAND = TwoPass.compile(
    (
        r"(?:^|[\s;&|(])(?i:setx[ \t]+|set[ \t]+-[A-Za-z]+[ \t]+|#[ \t]*define[ \t]+"
        r"|setenv[ \t]+|set\([ \t]*|set[ \t]+(?:::)?(?:[\w:]+\()?"
        r"|(?:set|new)-item[ \t]+(?:-path[ \t]+)?env:)"
        rf"(?P<name>[\w.-]*{_NAME_WORD}[\w.-]*)\)?[ \t]+(?i:-value[ \t]+)?" + _VALUE
    ).encode()
)
# A setting as line-based configs write it, its name and its one value split by blanks alone:
# mosquitto's `remote_password VALUE`, OpenWrt UCI's `option private_key '...'`, pgbouncer's
# and ntp's key files. The line holds the two and nothing else ("password reset required"
# is a sentence).
SPACED_SETTING = TwoPass.compile(
    (
        rf"(?m:^)[ \t]*(?:option[ \t]+)?(?P<name>[\w.-]*{_NAME_WORD}[\w.-]*)[ \t]+"
        + _VALUE
        + r"[ \t]*\r?(?m:$)"
    ).encode()
)
# A name and its value side by side in a pair: an Erlang or Elixir tuple in a config
# (`{db_password, "..."}`, Erlang's binary `{db_password, <<"...">>}`, `{:api_key, "..."}`),
# and a keyword then its value in a Lisp property list or a Clojure map (`:api-key "..."`).
# Only a quoted value.
_QUOTED = r"(?:\"(?P<dq>(?:[^\"\\\n]|\\.)+)\"|'(?P<sq>[^'\n]+)')"
TUPLE_PAIR = TwoPass.compile(
    (rf"\{{[ \t]*:?(?P<name>[\w.-]*{_NAME_WORD}[\w.-]*)[ \t]*,[ \t]*(?:<<)?" + _QUOTED).encode()
)
# A credential's quoted name and its value in a list or a tuple, as Rails logs a query's bound
# values (`[["password", "..."], ["id", 7]]`), devtools print localStorage's entries
# (`['auth.refresh_token', 'v1.P2K0...']`) and Python writes a pair (`_list_pair_kept`).
LIST_PAIR = TwoPass.compile(
    (rf"[\[(][ \t]*[\"'](?P<name>[\w.-]*{_NAME_WORD}[\w.-]*)[\"'][ \t]*,[ \t]*" + _QUOTED).encode()
)
# A Postman collection's API key auth: its entries are fields of their own, and the key is
# the one whose "key" is "value" (`"apikey": [{"key": "value", "value": "..."}, {"key":
# "key", "value": "X-API-Key"}]`). The other auth types name their fields for what they
# hold ("token", "password", "secretKey"), which NAMED_PAIR reads.
POSTMAN_APIKEY = TwoPass.compile(
    (
        r"\"(?P<name>apikey)\"[ \t]*:[ \t]*\[[^\]]*?\{[ \t\r\n]*\"key\"[ \t]*:[ \t]*\"value\""
        r"[ \t]*,[ \t\r\n]*\"value\"[ \t]*:[ \t]*" + _QUOTED
    ).encode()
)
# Lisp's `(setq openai-api-key "...")`, `(defvar ...)`, `(setenv "API_KEY" "...")`, Clojure's
# `(def db-password "...")`, Common Lisp's `(defparameter *api-key* "...")`: a quoted value
# only (a bare one is a symbol or a form: `(def api-key (System/getenv "API_KEY"))`).
LISP_SET = TwoPass.compile(
    (
        r"\((?:(?:setq(?:-default|-local)?|defvar|defcustom|defconst|defparameter|def|define)"
        rf"[ \t]+\*?|setenv[ \t]+\")(?P<name>[\w.-]*{_NAME_WORD}[\w.-]*)[*\"]?[ \t]+" + _QUOTED
    ).encode()
)
KEYWORD_PAIR = TwoPass.compile(
    (rf"(?:^|[\s(\[{{]):(?P<name>[\w.-]*{_NAME_WORD}[\w.-]*)[ \t]+" + _QUOTED).encode()
)
# An Apple property list's entry: `<key>APIKey</key>` then its `<string>...</string>`.
PLIST_ENTRY = TwoPass.compile(
    (
        rf"<key>[ \t]*(?P<name>[\w.:-]*{_NAME_WORD}[\w.:-]*)[ \t]*</key>[ \t\r\n]*<string>"
        r"[ \t\r\n]*" + _ELEMENT_TEXT + r"[ \t\r\n]*</string>"
    ).encode()
)
# `<entry key="jdbc.password">value</entry>`: an attribute names the element's text.
NAMED_ELEMENT = TwoPass.compile(
    (
        r"<[\w.:-]+[ \t][^<>\n]*?(?:name|key)[ \t]*=[ \t]*[\"']"
        rf"(?P<name>[\w.:-]*{_NAME_WORD}[\w.:-]*)[\"'][^<>\n]*>"
        r"[ \t\r\n]*" + _ELEMENT_TEXT + r"[ \t\r\n]*</"
    ).encode()
)
# `System.setProperty("NAME", "value")`, `define('NAME', 'value')`, `putenv(...)`: a call
# whose first argument names the second, each argument on its line or not (a notebook's
# `spark.conf.set(\n  "fs.azure.account.key.<account>...",\n  "..."\n)`); and Gradle's
# `buildConfigField("String", "NAME", "\"value\"")` (Groovy's with no parentheses), where a
# type comes first and the value is Java source, a literal in its own escaped quotes.
PROPERTY_CALL = TwoPass.compile(
    (
        r"(?:\(|buildConfigField[ \t]+)"
        r"(?:[ \t]*[\"'](?:String|boolean|int|long|float|double)[\"'][ \t]*,)?"
        rf"[ \t\r\n]*[\"'](?P<name>[\w.-]*{_NAME_WORD}[\w.-]*)[\"'][ \t]*,[ \t\r\n]*" + _VALUE
    ).encode()
)
# `if ("literal" == password)`: the literal first.
COMPARISON = TwoPass.compile(
    (
        r"(?:\"(?P<dq>(?:[^\"\\\n]|\\.)+)\"|'(?P<sq>[^'\n]+)')"
        rf"[ \t]*(?:===|!==|==|!=)[ \t]*(?P<name>[\w$.-]*{_NAME_WORD}[\w.-]*)"
    ).encode()
)
# `--api-key VALUE`, `--softlayer-api-key "VALUE"`, `--token=VALUE`: a long option's value.
CLI_OPTION = TwoPass.compile(
    (
        rf"(?:^|\s)--(?P<name>[\w.-]*{_NAME_WORD}[\w.-]*)(?:[ \t]+|=)"
        r"(?:\"(?P<dq>[^\"\n]+)\"|'(?P<sq>[^'\n]+)'|(?P<bare>[^\s\"'-][^\s\"']*))"
    ).encode()
)
# From the dash, so that RE2 skips ahead to each; the blank before it is checked apart.
CURL_USER = TwoPass.compile(
    rb"-(?:u|-user)(?:[ \t]+|=)[\"']?(?P<user>[^\s\"':]*)[\"']?:"
    rb"[\"']?(?P<password>[^\s\"']*)"
)
HEADER = TwoPass.compile(
    rb"(?:-H|--header)[ \t]+[\"'$]*(?P<name>[A-Za-z][\w-]*)[ \t]*:[ \t]*(?P<value>[^\"'\n]+)"
)
# A table whose columns are set by position, a rule of dashes under its header (PowerShell's
# Format-Table, SQL*Plus, sqlcmd, a credential manager's listing): a header that names a
# credential's column, then the rule. `_fixed_tables` reads the rows below by the rule's
# column extents.
FIXED_TABLE = TwoPass.compile(
    (
        rf"(?:^|[ \t])(?P<name>[\w.-]*{_NAME_WORD}[\w.-]*)(?:[ \t][^\n]*)?\r?\n"
        r"[ \t]*--+[ \t]+-"
    ).encode()
)
# An INI file's section named for passwords or secrets, whose entries are named for what they
# unlock (MobaXterm's `[Passwords]`, `root@db01=...`): `_credential_sections` judges each
# entry's value under the section's name.
CREDENTIAL_SECTION = TwoPass.compile(
    rb"(?m:^)[ \t]*\[(?P<name>(?i:passwords?|passwds?|secrets|credentials|[\w .-]{1,30}"
    rb"[ _-](?:passwords|secrets|credentials)))\][ \t]*\r?\n"
)
# A key written as its bytes, a list of 16 or more numbers under a key's name: a C array
# (LMIC's `static const u1_t PROGMEM APPKEY[16] = { 0xF0, 0x9D, ... };`), Rust's
# `const KEY: [u8; 16] = [...]`, Go's `[]byte{...}`, Python's `bytes([...])`, or a YAML or
# JSON list (zigbee2mqtt's `network_key: [...]`): 16 numbers at least; the reader judges them.
BYTE_ARRAY = TwoPass.compile(
    (
        rf"(?:^|[^\w$])(?P<name>\w*{_NAME_WORD}\w*)[\"']?(?:\[[0-9]*\])?"
        r"(?:[ \t]*:[ \t]*\[[ \t]*u8[ \t]*;[ \t]*[0-9]+[ \t]*\])?[ \t]*:?[:=][ \t]*"
        r"(?:\[\]byte|[A-Za-z_][\w.]*\(|\([\w \t]+\[[0-9]*\]\))?[ \t]*[\[{(]\s*"
        r"(?P<value>(?:(?:0[xX][0-9A-Fa-f]{1,2}|[0-9]{1,3})[ \t]*,\s*){15,}"
        r"(?:0[xX][0-9A-Fa-f]{1,2}|[0-9]{1,3}))"
    ).encode()
)
# An environment variable given as a record of its name and its value: Kubernetes' and
# Compose's `- name: ZENROWS` then `value: ...` on the next line, an ECS task definition's or
# docker inspect's `{"name": "ZENROWS", "value": "..."}`. NAMED_PAIR reads those whose name
# is a credential's; this one those named in capitals by anything else (a vendor's name,
# mostly), whose value is then judged by its look alone (`_env_pairs`). No counted run: in
# the readers' set, the counts made 1 MB of Kubernetes env blocks take 380 ms (review 15);
# the reader asks for the lengths.
ENV_PAIR = TwoPass.compile(
    rb"(?:^|[\s{,])[\"']?(?i:name)[\"']?[ \t]*[:=][ \t]*[\"']?(?P<name>[A-Z][A-Z0-9_]+)[\"']?"
    rb"[ \t]*,?[ \t]*(?:\r?\n[ \t]*)?[\"']?(?i:value)[\"']?[ \t]*[:=][ \t]*[\"']?"
    rb"(?P<value>[A-Za-z0-9+/=_-]+)(?:[\"'\s,}]|$)"
)
# `terraform output -json`: each output an object under its own name, its value in "value"
# after "sensitive" and "type" (a sensitive output's too: -json prints it in the clear).
# Judged as a name's value is (`_terraform_outputs`).
TERRAFORM_OUTPUT = TwoPass.compile(
    rb"\"(?P<name>[\w.-]+)\"[ \t]*:[ \t]*\{\s*"
    rb"(?:\"(?:sensitive|type)\"[ \t]*:[ \t]*(?:true|false|\"\w+\")[ \t]*,\s*)*"
    rb"\"value\"[ \t]*:[ \t]*\"(?P<value>[^\"\\\r\n]+)\""
)
# A table of settings, a name and its value a row, as tools print them: `vault kv get`'s
# `Key  Value` (then `---  -----`), psql's `name | value`, doppler's box of `│ NAME │ VALUE │`,
# a markdown table's `| Key | Value |`, `gh variable list`'s `NAME  VALUE  UPDATED`, `pulumi
# stack output --show-secrets`' `OUTPUT  VALUE`, a wiki's
# (MediaWiki: `! Setting !! Value`, then rows `| name || value` between `|-` lines). A
# header cell names the rows (key, name, variable, setting, parameter, field), the next one
# holds their values; in a table with bars, other cells may come first (`| Service | Env |
# Variable | Value |`). `_setting_rows` reads the rows.
SETTING_TABLE = TwoPass.compile(
    "(?:^|\n)[ \t]*(?P<open>[|│┃!]?)(?P<lead>(?:[^|│┃!\n]*[|│┃])*)"
    "[ \t]*(?P<head>(?i:key|name|variable|setting|parameter|field|output)s?)"
    "[ \t]*(?P<delimiter>[|│┃]|!!|[ \t]+)[ \t]*(?i:value)s?(?:[ \t|│┃!][^\n]*)?\r?\n".encode()
)
_SETTING_LEAD = SETTING_TABLE.parse.groupindex[b"lead"]
_SETTING_DELIMITER = SETTING_TABLE.parse.groupindex[b"delimiter"]
_SETTING_HEAD = SETTING_TABLE.parse.groupindex[b"head"]
# A command that stores a secret, whatever its name: each value it is given is the secret or
# one of its fields. Kubernetes' `kubectl create secret generic NAME --from-literal=KEY=VALUE`
# (and OpenShift's oc), the GitHub CLI's `gh secret set NAME --body VALUE`, the Azure CLI's
# `az keyvault secret set ... --value VALUE`, Vault's `vault kv put PATH KEY=VALUE ...`, and
# the platforms' `secrets set KEY=VALUE` (Fly.io, Doppler, Supabase). The pattern finds the
# command's words; `_secret_commands` reads its arguments.
SECRET_COMMAND = TwoPass.compile(
    rb"(?:^|[\s;&|(`$])(?P<command>create[ \t]+secret[ \t]+generic|gh[ \t]+secret[ \t]+set"
    rb"|keyvault[ \t]+secret[ \t]+set|vault[ \t]+kv[ \t]+(?:put|patch)|secrets[ \t]+set)[ \t]"
)

# A terminal's transcript: a command that prints a secret, then what it printed on the next
# line, alone. Either a variable's value by its name (`echo $ZENROWS`, `printenv NAME`,
# `heroku config:get NAME`, `doppler secrets get NAME --plain`, `aws configure get NAME`,
# PowerShell's `echo $env:NAME`), or what a secret store or a login hands out (`gcloud
# secrets versions access`, `gcloud auth print-access-token`, `aws secretsmanager
# get-secret-value ... --output text`, `aws ecr get-login-password`, `vault kv get -field=`,
# `op read`, `pass show`, `security find-generic-password -w`, `kubectl get secret ... |
# base64 -d`, `az keyvault secret show`, `gh auth token`, `heroku auth:token`, `cat` of a
# file a secret's word names: /etc/chef/encrypted_data_bag_secret, db_password.txt). A prompt
# may come first: anything up to a `$`, `#`, `>`, `%` or a zsh theme's arrow (U+276F,
# U+279C) and a blank (`alice@laptop:~/proj$ `, `(venv) $ `, `PS C:\> `), or up to a
# backtick (an agent's "Ran `CMD`", its output fenced on the next lines: only fenced, as a
# sentence names a command in backticks too). cmd's `echo %NAME%` too.
PRINTED_SECRET = TwoPass.compile(
    rb"(?m:^)[ \t]*(?:[^\r\n]*?(?:[$#>%\x{276F}\x{279C}][ \t]+|(?P<tick>`)))?"
    rb"(?:(?:(?:echo|Write-Output|Write-Host)[ \t]+(?:-n[ \t]+)?[\"']?(?:\$(?:\{|env:)?|%)"
    rb"|printenv[ \t]+|heroku[ \t]+config:get[ \t]+|doppler[ \t]+secrets[ \t]+get[ \t]+"
    rb"|aws[ \t]+configure[ \t]+get[ \t]+)(?P<name>[A-Za-z_][\w.]*)[^\r\n]*"
    rb"|(?P<printer>gcloud[ \t]+secrets[ \t]+versions[ \t]+access"
    rb"|gcloud[ \t]+auth[ \t]+print-(?:access|identity)-token"
    rb"|aws[ \t]+secretsmanager[ \t]+get-secret-value|aws[ \t]+ecr[ \t]+get-login-password"
    rb"|vault[ \t]+(?:kv[ \t]+get|read)[ \t]+[^\r\n]*-field"
    rb"|op[ \t]+read|pass[ \t]+show|security[ \t]+find-generic-password[^\r\n]*[ \t]-w"
    rb"|kubectl[ \t]+get[ \t]+secrets?[^\r\n]*\|[ \t]*base64[ \t]+(?:-d|--decode)"
    rb"|az[ \t]+keyvault[ \t]+secret[ \t]+show|gh[ \t]+auth[ \t]+token|heroku[ \t]+auth:token"
    rb"|(?:sudo[ \t]+)?cat[ \t]+[^\s|;&]*(?i:secret|passw(?:or)?d|token|api[_-]?key|master\.key)"
    rb"[^\s|;&]*)"
    rb"[^\r\n]*"
    # a GitHub Actions log's lines between a step's command and its output: the shell it
    # ran in and the end of the step's header (`##[group]Run CMD`, CMD, `shell: ...`)
    rb")(?:\r?\n[ \t]*(?:shell:[ \t][^\r\n]*|##\[endgroup\]))?(?:\r?\n[ \t]*##\[endgroup\])?"
    # an agent's transcript: the output in a fenced block under the command's line
    rb"(?:\r?\n[ \t]*```[\w-]*[ \t]*)?"
    rb"\r?\n[ \t]*(?P<value>[^\s]+)[ \t]*\r?(?m:$)"
)


def _table_header(name: str) -> str:
    """A table's header cell whose name matches `name`: in a CSV line (`,` `;` or a tab
    between cells) or a markdown table's (`|`), then the rest of the line and the next one,
    which must hold a delimiter too (a row, a markdown table's separator, or the rule under
    an SQL client's header: psql's `---+---`, mysql's `+---+`)."""
    return (
        r"(?:^|[\n,;\t|])[ \t]*[\"'`]?"
        rf"(?P<name>{name})"
        r"[\"'`]?[ \t]*(?:[,;\t|][^\n]*)?\r?\n[^\n,;\t|+]*[,;\t|+]"
    )


def _insert(column: str) -> str:
    """SQL's `INSERT INTO users (name, password) VALUES (`: columns, one of them matching
    `column`, then the first row's opening bracket."""
    return (
        r"(?i:insert)[ \t]+(?i:into)[ \t]+[^\s(]+[ \t]*"
        rf"\((?P<columns>[^()\n]*{column}[^()\n]*)\)\s*(?i:values)\s*\("
    )


# A credential's column: the cell's name one word, or a word and the credential's (`API Key`,
# `DB password`), or the word for a password in the languages password-in-prose-translated
# reads (`Wachtwoord`, `Contraseña`, `Senha`, `Mot de passe`; scanner.AST_TRIGGERS has each).
_CREDENTIAL_COLUMN = (
    rf"[\w.-]*{_NAME_WORD}[\w.-]*|[A-Za-z]+ (?i:key|token|secret|password|passphrase)"
    rf"|(?i:{'|'.join(PASSWORD_WORDS)}|mot[ _-]de[ _-]passe)"
)
# Both in one pattern, so that a text is searched for tables once; `_tables` reads the rows.
# An INSERT's columns may instead hold settings, a name and its value a row (`INSERT INTO
# settings (name, value)`, WordPress' `wp_options (option_name, option_value)`): each value is
# judged under its row's name (`_setting_pair`).
TABLE = TwoPass.compile(
    f"(?:{_table_header(_CREDENTIAL_COLUMN)})|(?:{_insert(f'(?:{_NAME_WORD}|(?i:value))')})".encode()
)
# A header cell that names a personal id's column: a document's or an id's name (words joined
# by blanks, _ or -, with number or no after them), or an id's acronym in any case. Turkish
# capital İ spelled out (KİMLİK, TARİHİ below): RE2 folds no case onto it.
ID_COLUMN = (
    r"(?i:(?:[a-z]+[ _-])?(?:passport|ssn|social[ _-]security|social[ _-]insurance"
    r"|national[ _-]?(?:id|identity|insurance)|tax[ _-]?id|driver'?s?[ _-]licen[cs]e"
    r"|aadhaa?r|personnummer|burgerservicenummer|sin|bsn|dni|nie|nif|cpf|curp|pesel|tfn|itin"
    r"|nino|ni[ _-]?(?:number|no)|ahv|svnr|ppsn|pps[ _-]?(?:number|no)|tckn|nir|hetu|cpr|rrn|nric"
    r"|medicare(?:[ _-]card)?|henkil(?:ö|o)tunnus|rijksregister(?:nummer)?"
    r"|(?:tc[ _-]?)?k(?:i|İ)ml(?:i|İ)k|teudat[ _-]?zehut|codice[ _-]fiscale"
    r"|steuer[ _-]?id|(?:steuer[ _-]?)?identifikationsnummer|emirates[ _-]?id|hkid|cuil"
    # the same documents in the languages of the countries that issue them
    r"|reisepass|passeport|pasaporte|passaporte|passaporto|paspoort|paszport|pasaport"
    r"|(?:personal)?ausweis|carte[ _-]d'identit(?:é|e)|dow(?:ó|o)d[ _-]osobisty"
    r"|documento[ _-]de[ _-]identidad|carteira[ _-]de[ _-]identidade|carta[ _-]d'identit(?:à|a)"
    r"|(?:renten|sozial)versicherungs|sv[ _-]?nummer|kvnr|(?:kranken)?versichertennummer"
    r"|cart(?:ã|a)o[ _-](?:do[ _-])?sus|tessera[ _-]sanitaria"
    r"|身份证号?码?|身份證(?:號碼?)?|주민등록번호|マイナンバー|個人番号)"
    # its number or no., and a note in brackets: Driver's licence no. (ON)
    r"(?:[ _-]?(?:number|nummer|num|no\.?|nr\.?))?(?: ?\([^()]{1,12}\))?)"
)
# A header cell that names a date of birth's column, in English and the languages the
# date-of-birth rule reads (dob, date_of_birth, birthDate, Geburtsdatum, date de naissance,
# fecha_nacimiento, data di nascita, data_de_nascimento, geboortedatum, födelsedatum,
# fødselsdato, syntymäaika, data urodzenia, datum narození, doğum tarihi, дата рождения,
# 生年月日, 出生日期, 생년월일), a word before it allowed (patient_dob). Each holds one of
# scanner.AST_TRIGGERS, which run the readers.
DOB_COLUMN = (
    r"(?i:(?:[a-z]+[ _-])?(?:dob|d\.o\.b\.?|(?:date|dt)[ _-]?of[ _-]?birth"
    r"|birth[ _-]?(?:date|day|dt)|geburts(?:datum|tag)|geboorte[ _-]?datum"
    r"|date[ _-]?(?:de[ _-]?)?naissance|fecha[ _-]?(?:de[ _-]?)?nacimiento"
    r"|(?:data|dt)[ _-]?(?:d[ei][ _-]?)?nascita|(?:data|dt)[ _-]?(?:d[eo][ _-]?)?nascimento"
    r"|f(?:ö|o|oe)delsedatum|f(?:ø|o|oe)dselsdato|syntym(?:ä|a)aika|data[ _-]?urodzenia"
    r"|datum[ _-]?narozen(?:í|i)|do(?:ğ|g)um[ _-]?tar(?:i|İ)h(?:i|İ)"
    r"|дата[ _-]рождения|生年月日|出生日期|出生年月日|생년월일))"
)
# A header cell that names a postal address's column: a home's, a street's, a mailing or a
# billing one, its first line, or the bare word (its cells must then look like a street's
# line: pii.street_line), and the word in the languages of the countries most exports come
# from. Each holds one of scanner.AST_TRIGGERS, which run the readers.
ADDRESS_COLUMN = (
    r"(?i:(?:(?:home|street|mailing|postal|billing|shipping|delivery|residential|private)"
    r"[ _-]?)?address(?:[ _-]?(?:line)?[ _-]?1)?|street|adresse|anschrift|privatadresse"
    r"|wohnadresse|stra(?:ß|ss)e|direcci(?:ó|o)n|domicilio|indirizzo|endere(?:ç|c)o|adres"
    r"|adresa|osoite|adress)"
)
# Such a cell in a CSV's or a markdown table's header, or a column of an INSERT, then a row
# below (as TABLE's).
ID_TABLE, DOB_TABLE, ADDRESS_TABLE = (
    TwoPass.compile(f"(?:{_table_header(column)})|(?:{_insert(column)})".encode())
    for column in (ID_COLUMN, DOB_COLUMN, ADDRESS_COLUMN)
)
_NAME, _COLUMNS = TABLE.parse.groupindex[b"name"], TABLE.parse.groupindex[b"columns"]
# `_table`, `_delimited_rows` and `_sql_rows` read a header's name at _NAME and an INSERT's
# columns at _COLUMNS in ID_TABLE's and DOB_TABLE's spans too (tests/plugins/privacy/
# test_readers.py checks the patterns agree).
# An Authorization value's scheme: Basic, Bearer, Token, Api-Token, SSWS, ...; the blank after
# it may be a shell's escaped one (`-H Authorization:Bearer\ ...`, unquoted).
SCHEME = re2.compile(rb"^(?P<scheme>[A-Za-z][\w-]*)\\?[ \t]+(?P<rest>\S+)")


# The scanner's bounds on per-match Python work (scanner.py), applied to each reader.
MAX_FINDINGS = 100
MAX_CANDIDATES = 2000
# A table's header read counts as this many of a table reader's candidates: reading one (its
# line, its rule, its cells' names) costs about what judging that many cells does. Counted
# once each, a MB of two-line psql tables (` id | passport` over its rule) kept the credential
# and identity readers at 2,000 headers each: 115-170 ms, over the bench's ~100 ms a MB.
HEADER_CANDIDATES = 4
# Matches turned down by their name alone (author = ..., keyboard: ...) cost a search and a
# cached lookup, about 4.5 us each: a reader passes over this many, and one more for each
# this many bytes of text. A JSON array with an `author` field in every record of ~100 bytes
# stays inside up to about 1 MB; a text that is nothing but such names (`<e key="pw">x</`,
# `Passport No: ...` again and again) is cut off after about 10,000 a MB, 45-60 ms (at one
# for every 16 bytes, 1 MB of them took 235-325 ms, over the ~100 ms the bench allows).
MAX_PASSED_OVER = 2000
BYTES_PER_PASSED_OVER = 128
# PowerShell's Verb-Noun cmdlet names: Get-Credential, ConvertTo-SecureString.
_CMDLET = re2.compile(rb"^[A-Z][A-Za-z]+-[A-Z][A-Za-z]+$")
# An unquoted value with no end in sight (a pasted run) is reported by its first bytes.
MAX_BARE_BYTES = 200
# A value read on a line of its own (a YAML block scalar's) is read this far at most.
MAX_JUDGED_BYTES = 4096


class Found(NamedTuple):
    """A reader's finding: rule id, byte offsets of the value in the text, the value, and
    its category (a credential's, or personal data's in a personal id's or a date of
    birth's column)."""

    rule_id: str
    start: int
    end: int
    value: str
    category: str = "secret"


def read_all(
    data: bytes,
    known: Reported = NOTHING_REPORTED,
    disabled: Container[str] = (),
    *,
    readers: Sequence[tuple[str, Reader]] | None = None,
    each: Each | None = None,
) -> list[Found]:
    """What every reader finds in `data` (UTF-8), with byte offsets, but for values inside
    the secrets `known` holds: the regex rules found those already, and no reader judges
    them again (a vendor's token bound to a name is the commonest). Readers whose id is in
    `disabled` do not run.

    One pass of an RE2 set of the other readers' patterns says which of them match at all
    (`readers_for`, which a caller may have asked already and pass as `readers`); only
    those run, after the assignment reader, which always does. Bounded like the regex
    rules: a reader stops at MAX_FINDINGS findings, and one whose candidates keep failing
    stops at MAX_CANDIDATES, reporting the rest of the text as one unverified finding, so
    that an unchecked text is never "clean".

    Each reader judges the text on its own, so `each` may run them at once (the scanner's
    worker threads, for a long text); their findings come in the same order either way.
    """

    def found_by(chosen: tuple[str, Reader]) -> list[Found]:
        rule_id, reader = chosen
        overflow: list[int] = []
        found = list(itertools.islice(reader(data, overflow, known), MAX_FINDINGS))
        if overflow:
            # where a reader stopped may be a cut at a count of bytes (an SQL row's bare value
            # cut at _MAX_BARE_ITEM): from the start of the character it falls in
            start = _char_start(data, overflow[0])
            rest = data[start:].decode("utf-8", "surrogatepass")
            found.append(Found(f"{rule_id}:unverified", start, len(data), rest))
        return found

    chosen = [
        r for r in (readers_for(data) if readers is None else readers) if r[0] not in disabled
    ]
    if not chosen:
        return []
    known.index()  # built once here, not by each reader's thread at once
    answers = (each or _in_turn)(found_by, chosen)
    return [f for found in answers for f in found]


def _in_turn(
    work: Callable[[tuple[str, Reader]], list[Found]], items: Sequence[tuple[str, Reader]]
) -> list[list[Found]]:
    return [work(item) for item in items]


def readers_for(data: bytes) -> list[tuple[str, Reader]]:
    """The readers whose pattern matches somewhere in `data`, in READERS order, and the
    assignment reader, which always runs (see _SET_READERS).

    Should the set's DFA give up (out of memory), every reader runs.
    """
    matched = _READER_SET.matching(data)
    if matched is None:
        return [(rule_id, reader) for rule_id, _, reader in READERS]
    chosen = sorted({*_UNSET_READERS, *(_SET_READERS[i] for i in matched)})
    return [(READERS[i][0], READERS[i][2]) for i in chosen]


def _matches(
    pattern: TwoPass,
    data: bytes,
    overflow: list[int],
    resume: Callable[[bytes, Spans, int], int | None] | None = None,
    named: Callable[[bytes, Spans], bool] | None = None,
) -> Iterator[Spans]:
    """Each match's spans, the next search starting where the last match ended, or where
    `resume(data, spans, end)` says; past MAX_CANDIDATES, the position reached goes into
    `overflow` and the search stops.

    A match that `named(data, spans)` turns down (its name is no credential's) is passed
    over without counting: the cached name check costs little, and a large benign file
    (a JSON array with an `author` field) must not spend the budget meant for values
    judged. Those have a budget of their own, MAX_PASSED_OVER and one more for each
    BYTES_PER_PASSED_OVER bytes of text, which only a text made of them spends.

    A match longer than spans.MAX_PARSED_BYTES is read by its start (see `search_parsed`),
    or if that cannot be (a quoted value of thousands of bytes: a key in JSON), by its start
    and its end joined; one that cannot be read either way (a name of thousands of bytes)
    is passed over.
    """
    pos, size, counted, passed = 0, len(data), 0, 0
    passable = MAX_PASSED_OVER + size // BYTES_PER_PASSED_OVER
    while counted < MAX_CANDIDATES and passed < passable:
        if pos > size:
            return
        found = search_parsed(pattern, data, pos, splice=True)
        if found is None:
            return
        start, end, spans = found
        if spans is None:
            counted += 1
        elif named is None or named(data, spans):
            counted += 1
            yield spans
        else:
            passed += 1
        if spans is not None and resume is not None:
            again = resume(data, spans, end)
            if again is not None and start < again:
                end = again
        pos = max(end, start + 1)
    if pos <= size and search_parsed(pattern, data, pos) is not None:
        overflow.append(pos)


# Values bound to a weak name (key, auth) must look machine-made, and token_like asks for
# this many characters at least: a shorter value is turned down with the name.
_SHORTEST_TOKEN = 12


def _named(pattern: TwoPass) -> Callable[[bytes, Spans], bool]:
    """A test for `_matches`: whether a match of `pattern` could bind a credential, judged
    by its name alone (cached), and for a weak name (key, auth) by its value's length."""
    index = pattern.parse.groupindex
    name_group = index[b"name"]
    groups = (b"dq", b"sq", b"bq", b"bare", b"cdata", b"value")
    value_groups = [index[g] for g in groups if g in index]

    def named(data: bytes, spans: Spans) -> bool:
        start, end = spans[name_group]
        if end - start > MAX_NAME_CHARS:
            return False
        name = _text(data, (start, end))
        strength = credential_name_strength(name)
        if strength != 1:
            return strength > 0 or _secret_id_name(name)
        value = first_set(spans, value_groups)
        return value is not None and value[1] - value[0] >= _SHORTEST_TOKEN

    return named


(_ASSIGNMENT_NAMED, _PROPERTY_NAMED, _SETTER_NAMED, _OPTION_NAMED) = map(
    _named, (ASSIGNMENT, PROPERTY_CALL, SETTER_CALL, CLI_OPTION)
)
_TABLE_NAMED = _named(TABLE)
_ARRAY_NAMED = _named(BYTE_ARRAY)
_FIXED_NAMED = _named(FIXED_TABLE)  # a strong name: a header gives no value to judge a weak one by
_TERRAFORM_NAMED = _named(TERRAFORM_OUTPUT)


def _table_named(data: bytes, spans: Spans) -> bool:
    """An INSERT's columns name a credential (its pattern asks); a header cell must."""
    return spans[_COLUMNS][0] >= 0 or _TABLE_NAMED(data, spans)


def _inside(known: Reported, span: tuple[int, int]) -> bool:
    """Whether a known secret holds the span."""
    return known.holds(span[0], span[1], "secret")


def _text(data: bytes, span: tuple[int, int]) -> str:
    return data[span[0] : span[1]].decode("utf-8", "surrogatepass")


def _char_start(data: bytes, at: int) -> int:
    """`at`, or the start of the UTF-8 character it falls inside: a cut at a count of bytes
    keeps whole characters (a strict decode of the span raised UnicodeDecodeError)."""
    while 0 < at < len(data) and 0x80 <= data[at] < 0xC0:
        at -= 1
    return at


# Values that say where the secret is, or that are public, under any name: a name, a colon
# and an absolute path of two parts or more (systemd's `LoadCredential=tls.key:/etc/ssl/
# private/server.key`, a container's `name:/run/secrets/name`); a variable's element or
# member, read where the secret is needed (CMake's and Perl's `$ENV{NAME}`, PowerShell's
# `$creds.SessionToken`); an SSH public key (`ssh-rsa AAAA... user@host`); a BuildKit
# secret's spec, its id and where it is read from (`docker build --secret
# id=npm,src=$HOME/.npmrc`, `RUN --mount=type=secret,id=npm,target=/root/.npmrc`): a
# mount's type or a source it names, never an id alone (`DB_PASSWORD=id=Xk9p...` is one);
# Great Expectations' reference to a secret store (`secret|arn:aws:secretsmanager:...`,
# `secret|projects/.../secrets/...`, `secret|https://<vault>.vault.azure.net/...`); an
# OpenPGP message, what a value encrypted to a key holds (Salt's and SOPS' gpg renderers).
_NO_VALUE = re2.compile(
    rb"^(?:[\w.@-]+:/[\w.@-]+(?:/[\w.@-]+)+/?$|\$[A-Za-z_]\w*[.{\[]"
    rb"|secret\|(?:arn:aws:secretsmanager:[\w-]+:\d{12}:secret:[\w/+=.@-]+"
    rb"|projects/[\w.-]+/secrets/[\w.-]+(?:/versions/[\w.-]+)?"
    rb"|https://[\w.-]+\.vault\.azure\.net/secrets/[\w.-]+(?:/[\w]+)?)(?:\|[\w.-]+)?$"
    rb"|-----BEGIN PGP MESSAGE-----(?:\s|$)"
    # LiteLLM's reference to an environment variable; SigV4's scheme (`Authorization:
    # AWS4-HMAC-SHA256 Credential=...`), a constant as `Bearer` is
    rb"|os\.environ/[A-Za-z_]\w*$|AWS4-(?:HMAC|ECDSA-P256)-SHA256$"
    rb"|(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d+)[ \t]+AAAA"
    rb"|type=secret,id=[\w.-]+(?:,[a-z]+=[^,\s]*)*$"
    rb"|id=[\w.-]+(?:,(?:target|dst|type|required|mode|uid|gid)=[^,\s]*)*"
    rb",(?:src|source|env)=[^,\s]*(?:,[a-z]+=[^,\s]*)*$)"
)


def _named_value(name: str, value: str, quoted: bool = False) -> bool:
    """A value bound to `name`: a credential if the name says so and the value agrees.
    One longer than a parsed match (a key read across the cut, `search_parsed`) is judged by
    its first FIRST_PARSED_BYTES characters: they tell as much, and a flood of such values
    then costs what one of short values does."""
    strength = credential_name_strength(name)
    if strength == 0:
        return _secret_id(name, value)
    if len(value) > MAX_PARSED_BYTES:
        value = value[:FIRST_PARSED_BYTES]
    value = json_unescaped(value)  # in a JSON string: `$DOCKERHUB_PASSWORD\n`, `\u00e9`
    if published_key(value):
        return False  # whatever its name; judged before its public prefix is cut (eyJ...)
    # xoxp-, pypi-, SG.: the name says credential whatever the shape; judge the rest
    value = value[public_prefix(value) :]
    if value.startswith("\\$"):
        value = value[1:]  # an expansion escaped for a later one (CMake's, make's "\$ORIGIN")
    if found_in(_NO_VALUE, value.encode("utf-8", "surrogatepass")) or _entity_id(name, value):
        # where the secret lies: LoadCredential=ID:PATH, $ENV{X}, $creds.Token; or an id
        # named for what the name says it keys (user_key: user_4000)
        return False
    if encoded_public_key(value):
        return False  # Web Push's applicationServerKey: a P-256 point, public by its use
    if quoted and " " in value:
        return spaced_password(name, value)
    if "-" in value and hyphenated_password(name, value):
        return True
    if value.rstrip().endswith(("...", "…")):  # cut short: judge what is left strictly
        return token_like(value.rstrip().rstrip(".…"))
    if strength == 1:  # key, auth, pw: many keys are not secrets, so the value must look random
        words = name_words(name)
        if words[-2:] == ["routing", "key"] and not found_in(
            _ROUTING_SECRET, value.encode("utf-8", "surrogatepass")
        ):
            return False  # AMQP's: amq.gen-..., a UUID, dotted words; PagerDuty's is 32 long
        # A UUID is an identifier first: under the bare name `key`, a cache's, an
        # idempotency request's or a record's key (`key="3f2b8c1e-..."`); under
        # `Authorization` (a HAR's or a Postman collection's header) it is what the header
        # sends, and under any other name it is judged as any value is: some vendors' API
        # keys are UUIDs (herokuKey, hubspot_key).
        single = len(words) == 1 and words[0] != "authorization"
        cached = words == ["key"] and cache_key(value)  # a cache's key is named `key`
        return token_like(value) and not (single and (is_uuid(value) or cached))
    if _is_key_id(name, value):
        return False
    return looks_like_credential(value) or token_like(value)


def _secret_id(name: str, value: str) -> bool:
    """A UUID under a name that ends in `secret id`: HashiCorp's tokens (Consul's and Nomad's
    ACL SecretID, Vault's AppRole secret_id), which are the credential itself. (AWS's SecretId
    names a secret in its store: a name or an ARN, never a UUID.)"""
    value = value.strip()  # the value's shape first: every name no credential's comes here
    return is_uuid(value) and _secret_id_name(name) and token_like(value)


def _secret_id_name(name: str) -> bool:
    words = name_words(name)
    # Bitwarden Secrets Manager's secret ids (its k8s operator's bwSecretId) name a secret
    return words[-2:] == ["secret", "id"] and words[-3:-2] not in (["bw"], ["bitwarden"])


# A word and a number (user_4000, cust-0012): an id named for what it keys. Under a name
# that holds the same word (user_key, a pseudonymised table's column) it is that id.
_ENTITY_ID = re2.compile(rb"^([a-z]{3,})[_-][0-9]+$")


def _entity_id(name: str, value: str) -> bool:
    spans = search_spans(_ENTITY_ID, value.encode("utf-8", "surrogatepass"), 0)
    if spans is None:
        return False
    # the word right before the name's `key` (user_key: user_4000), never any word of a
    # password's name (postgres_password: postgres_2024 is a password)
    words = name_words(name)
    return (
        len(words) >= 2
        and words[-1] in ("key", "keys")
        and words[-2] == value[: spans[1][1]]
        and words[-2] in _ENTITY_WORDS  # secret_key: secret_2024 is a (weak) secret (review 33)
    )


# The entities a pseudonymised table keys its rows by: a `user_key` column holds user_4000.
# Only these: before `key`, most words say what kind of secret it is (secret, master, app).
_ENTITY_WORDS = frozenset(
    {
        *("user", "customer", "member", "account", "patient", "employee", "student"),
        *("person", "subscriber", "visitor", "player", "household", "contact", "row"),
    }
)


# PagerDuty's routing key (an Events API integration's secret): 32 letters and digits; the
# other routing keys, AMQP's, are a broker's own names and dotted words.
_ROUTING_SECRET = re2.compile(rb"^[A-Za-z0-9]{32}$")
# An OpenPGP key's id (8 or 16 hex digits) or fingerprint (40, as gpg prints it: capitals):
# what a signing key's setting names (git's user.signingkey), not the key itself.
_KEY_ID = re2.compile(rb"^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{16}|[0-9A-F]{40})$")


def _is_key_id(name: str, value: str) -> bool:
    """A key's id bound to a signing key's name: `signingkey = 3AA5C34371567BD2`, and an
    OpenPGP key's fingerprint (`GPG_KEY`, as the python Docker image sets it)."""
    core = value.strip()
    if len(core) not in (8, 16, 40) or not found_in(_KEY_ID, core.encode("utf-8", "surrogatepass")):
        return False
    words = name_words(name)
    return any(
        w.endswith("key") and (w[:-3] or before) in ("signing", "sign", "gpg", "pgp")
        for before, w in zip(["", *words], words, strict=False)
    )


def _assignments(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    # groups: decl, name, close, gotype, op, space, then the value's dq, sq, bq, bare
    # keyboard: ..., sort_key = ..., author = ...: turned down by the name in _matches
    parents = _Parents(data)
    for spans in _matches(ASSIGNMENT, data, overflow, _search_inside, _assignment_named):
        decl, name_span, close, gotype, op_span, space = spans[1:7]
        value_span = first_set(spans, range(7, 11))
        if value_span is None:
            continue
        op = data[op_span[0] : op_span[1]]
        typed = _typed_name(data, name_span, gotype, op) if decl[0] < 0 else name_span
        if typed is None:
            continue
        name_span = typed
        name = _text(data, name_span)
        quoted_name = close[1] > close[0]
        bare = spans[10][0] >= 0
        expansion = data[max(0, name_span[0] - 2) : name_span[0]] == b"${"
        if expansion:
            # a shell expansion or a property placeholder: its default is a literal,
            # ${NAME:?message} is not
            value_span = _default(op, value_span, data) if bare else None
        if bare and value_span is not None:
            value_span = _colon_in_value(data, op, close[1], space, value_span)
            given = value_span
            value_span = _bare_assigned(data, op, value_span)
            if value_span is None and op == b"=" and _a_commands_word(data, name_span, given):
                value_span = given  # PGPASSWORD=... psql -h db, java -Dkey.pass=... -jar
        # `password: |-` and the value on the next line: a YAML block scalar, read as a
        # quoted value is (a passphrase's blanks are its own)
        block = None
        if bare and op == b":" and value_span is not None:
            block = _block_scalar(data, name_span[0], value_span)
            value_span = block or value_span
        if (
            value_span is None
            or _inside(known, value_span)
            or (
                bare
                and op == b":"
                and value_span[1] - value_span[0] >= MIN_SEALED_BYTES
                and parents.encrypted(name_span[0])
            )
        ):
            continue
        if op in (b"||", b"??") and value_span[0] - 1 != space[1]:
            continue  # a literal inside a call: token || t('passwordRequired')
        if not bare and _looked_up(data[space[1] : value_span[0]]):
            continue  # the literal names what a lookup fetches: headers.get("Authorization")
        value = _text(data, value_span)
        tight_colon = (
            op == b":" and bare and not quoted_name and space[1] == space[0] and not expansion
        )
        # `name:value` with no blank: a key if it looks machine-made, but never after a
        # dotted name (io.jsonwebtoken:jjwt-jackson is a Maven coordinate), nor a path's
        # `::` (Rust's and C++'s `token::tests::shard`, Ruby's `Auth::Token`)
        if tight_colon and (
            b"." in data[name_span[0] : name_span[1]]
            or value.startswith(":")
            or not token_like(value)
        ):
            continue
        found = _assigned(name, value, value_span, bare=bare, block=block is not None)
        if found is not None:
            yield found


def _typed_name(
    data: bytes, name: tuple[int, int], gotype: tuple[int, int], op: bytes
) -> tuple[int, int] | None:
    """The assigned name's span, where no var, let or val came first. A name and a word
    after it (ASSIGNMENT's Go type) bind a value only as a label of two words before a
    colon that both name a credential, the second on its own too (`Auth Token: ...`,
    `Secret Key: ...`; not `Key Vault: ...`, `Password Manager: ...` or `<key tag="x"`):
    then the two words are the name. None where they bind nothing."""
    if gotype[0] < 0:
        return name
    both = (name[0], gotype[1])
    if (
        op != b":"
        or credential_name_strength(_text(data, gotype)) == 0
        or credential_name_strength(_text(data, both)) == 0
    ):
        return None
    return both


def _assigned(
    name: str, value: str, span: tuple[int, int], *, bare: bool, block: bool
) -> Found | None:
    """An assignment's finding (`_named_found`): a bare value is judged as a word, a YAML
    block scalar's as a quoted one is."""
    return _named_found("assigned-credential", name, value, span, quoted=not bare or block)


def _named_found(
    rule_id: str, name: str, value: str, span: tuple[int, int], *, quoted: bool
) -> Found | None:
    """The finding for `value` (at `span`) bound to `name`: in a quoted value, the token
    after a credential's scheme (`_after_scheme`) rather than the scheme too; else the value
    that its name makes a credential (`_named_value`); or None. Every reader of a quoted
    value reports through this, so a scheme is cut the same way wherever the value stands."""
    cut = _after_scheme(value) if quoted else 0
    if cut and _named_value(name, value[cut:], quoted=True):
        start = span[0] + len(value[:cut].encode("utf-8", "surrogatepass"))
        return Found(rule_id, start, span[1], value[cut:])
    if _named_value(name, value, quoted=quoted):
        return Found(rule_id, span[0], span[1], value)
    return None


def _after_scheme(value: str) -> int:
    """Where the token starts in a value that is a credential's scheme, a blank and a
    token that looks machine-made, as a header sends it (`Token 3a8f...`, Zoho's
    `Zoho-enczapikey wSsV...`); 0 for any other value (a passphrase: `Secret squirrel42`)."""
    scheme, blank, rest = value.partition(" ")
    if not blank or " " in rest or not _token68(rest) or credential_name_strength(scheme) != 2:
        return 0  # auth-params (`Token token="..."`) are another reader's
    return len(scheme) + 1 if token_like(rest) else 0


# "public" as the word before a name (public key:), which the name's own words leave out.
_PUBLIC_BEFORE = re2.compile(rb"(?i)(?:^|[^\w])public[ \t]$")
# What follows a test's name on a test runner's report line: how long it ran.
_DURATION = re2.compile(rb"^[ \t]*\(\d+(?:\.\d+)?[ \t]*m?s\)")
_ASSIGNED_NAME = ASSIGNMENT.parse.groupindex[b"name"]
_ASSIGNED_BARE = ASSIGNMENT.parse.groupindex[b"bare"]


def _assignment_named(data: bytes, spans: Spans) -> bool:
    """`_matches`' test for an assignment: its name could bind a credential (and "public"
    is not the word before it), and it is no test runner's line, `PASS: value` and the
    test's duration (go test's `--- PASS: TestX_Y (0.00s)`): passed over uncounted, so that
    a long test log spends no candidates."""
    if not _ASSIGNMENT_NAMED(data, spans):
        return False
    name, value = spans[_ASSIGNED_NAME], spans[_ASSIGNED_BARE]
    if found_in(_PUBLIC_BEFORE, data[max(0, name[0] - 8) : name[0]]):
        return False  # wg show's `public key: ...`: the name's word before it, apart
    if value[0] < 0 or data[name[0] : name[1]].lower() != b"pass":
        return True
    return not found_in(_DURATION, data[value[1] : value[1] + 32])


# A call before a literal that looks a value up by the literal's name, rather than converting
# the literal itself (`[]byte("...")`, `String::from("...")`, `SecretStr("...")`): a getter
# or a reader of the environment, a config, the headers, the request's parameters.
_LOOKUP_CALL = re2.compile(
    rb"(?i)(?:^|[.:])(?:get|fetch|lookup|load|read|require|header|param|query|env|var)\w*\([\"'`]$"
)


def _looked_up(prefix: bytes) -> bool:
    """Whether `prefix`, what stands between an assignment's operator and its quoted value,
    is a lookup call opening on it (`config.get("`, `os.getenv('`)."""
    return len(prefix) > 2 and found_in(_LOOKUP_CALL, prefix)


# YAML's block scalar header: | or >, then a chomping indicator (- or +) and an indentation
# digit, in either order.
_BLOCK_HEADER = re2.compile(rb"^[|>](?:[-+]?[1-9]?|[1-9][-+])$")


def _block_scalar(data: bytes, name_start: int, span: tuple[int, int]) -> tuple[int, int] | None:
    """The span of the first line of a YAML block scalar whose header is `span`
    (`password: >-`, a comment at most after it): the next line, indented deeper than the
    key's; None if `span` is no such header. Reads no more than a line each way, at most
    MAX_BARE_BYTES of the key's and MAX_JUDGED_BYTES of the value's."""
    start, end = span
    if end - start > 3 or not found_in(_BLOCK_HEADER, data[start:end]):
        return None
    line_end = data.find(b"\n", end, end + MAX_BARE_BYTES)
    rest = data[end:line_end].strip()
    if line_end < 0 or (rest and not rest.startswith(b"#")):
        return None
    key_line = data.rfind(b"\n", max(0, name_start - MAX_BARE_BYTES), name_start) + 1
    if key_line == 0 and name_start > MAX_BARE_BYTES:
        return None
    key_indent = _indent(data, key_line, name_start)
    value_start = line_end + 1
    value_end = data.find(b"\n", value_start, value_start + MAX_JUDGED_BYTES)
    if value_end < 0:
        value_end = _char_start(data, min(len(data), value_start + MAX_JUDGED_BYTES))
    indent = _indent(data, value_start, value_end)
    if indent <= key_indent:
        return None
    value = data[value_start + indent : value_end].rstrip()
    return (value_start + indent, value_start + indent + len(value)) if value else None


# A YAML mapping of values encrypted at rest: a Bitnami SealedSecret's `encryptedData:`,
# whose values only the cluster's controller can decrypt (`kubeseal`'s output, committed to
# Git by design). Each holds a session key sealed with the controller's RSA key before the
# secret (4096 bits by default: 683 characters of base64; 2048 bits, 342): a value shorter
# than the MAX_BARE_BYTES a bare value is read to is none of them.
_ENCRYPTED_MAPPING = re2.compile(rb"(?i)^[ \t]*encrypted(?:[_-]?data)?[ \t]*:[ \t]*$")
MIN_SEALED_BYTES = MAX_BARE_BYTES


# Lines a text's parents are looked for across, at most: past them a key is judged as any is.
MAX_PARENT_LINES = 100_000


class _Parents:
    """The YAML mapping each key of one text sits in: the first line above the key indented
    less (blank lines passed over). Each line is read once for each indent asked about:
    the keys of one mapping (a SealedSecret's dozens of values) share their walk, and a text
    of keys between comment lines costs its length, not its length times its keys."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.parent: dict[tuple[int, int], int] = {}  # (line start, indent) -> parent's start
        self.read = 0

    def encrypted(self, name_start: int) -> bool:
        """Whether the key at `name_start` sits in a mapping of encrypted values
        (`encryptedData:`)."""
        data = self.data
        line = data.rfind(b"\n", 0, name_start) + 1
        indent = _indent(data, line, name_start)
        if not indent:
            return False
        walked, parent, end = [], -1, line - 1
        while end > 0 and self.read < MAX_PARENT_LINES:
            start = data.rfind(b"\n", 0, end) + 1
            known = self.parent.get((start, indent))
            if known is not None:
                parent = known
                break
            walked.append((start, indent))
            self.read += 1
            if _indent(data, start, end) < indent and data[start:end].strip():
                parent = start
                break
            end = start - 1
        for key in walked:
            self.parent[key] = parent
        if parent < 0:
            return False
        stop = data.find(b"\n", parent)
        above = data[parent : stop if stop >= 0 else len(data)].rstrip(b"\r")
        return found_in(_ENCRYPTED_MAPPING, above)


def _indent(data: bytes, start: int, stop: int) -> int:
    """How many blanks open data[start:stop]."""
    line = data[start:stop]
    return len(line) - len(line.lstrip(b" "))


def _search_inside(data: bytes, spans: Spans, end: int) -> int | None:
    """Where to search again after an assignment whose value holds another one: its start.

    - a bare value that is a name a literal falls back from, `||` or `??` next:
      `token = process.env.TOKEN ?? "..."`;
    - a quoted shell expansion, whose default may be the literal:
      `password: "${DB_PASSWORD:-...}"`.

    Only a value that the match read whole, and as short as a name (an expansion: twice
    that), so that each search from there costs no more.
    """
    start, stop = spans[10]
    if start >= 0:
        if stop != end or stop - start > MAX_NAME_CHARS:
            return None
        following = data[stop : stop + 8].lstrip(b" \t")
        return start if following.startswith((b"||", b"??")) else None
    start, stop = first_set(spans, range(7, 10)) or (-1, -1)
    if start < 0 or stop + 1 != end or stop - start > 2 * MAX_NAME_CHARS:
        return None
    return start + 2 if data[start : start + 2] == b"${" else None


def _colon_in_value(
    data: bytes, op: bytes, name_end: int, space: tuple[int, int], span: tuple[int, int]
) -> tuple[int, int]:
    """A bare value's span, all of it where the pattern read `api_key: arn:aws:...` as a
    typed name (`name: Type =`) with a colon for its operator and no blank after it: that
    is YAML's key, then a value with a colon in it. (`auth: token: value`, a blank after the
    colon, is no YAML value: the value is what follows the blank.) The same where it read
    the value's base64 padding as the operator and the value (`client-secret: c2VjcmV0==`
    as the type `c2VjcmV0`, `=`, then `=`)."""
    op_start = space[0] - 1
    tight = op == b":" and space[1] == space[0]
    padding = op == b"=" and space[1] == space[0] and not data[span[0] : span[1]].strip(b"=")
    typed = data.find(b":", name_end, op_start) if tight or padding else -1
    if typed < 0:
        return span
    piece = data[typed + 1 : op_start]
    return (op_start - len(piece.lstrip(b" \t")), span[1])


_CODE_OPERATORS = frozenset({b"||", b"??", b"==", b"!=", b"===", b"!==", b"<-", b"<<-"})


def _bare_assigned(data: bytes, op: bytes, span: tuple[int, int]) -> tuple[int, int] | None:
    """An unquoted value's span, or None where it is code: a variable compared or fallen
    back to (`password == other`, `token || fallbackToken`; a literal fallback is quoted),
    whatever R's arrow assigns (R has no bare literal: `token <- resp$access_token`), a
    call's argument (`key = creds.dig(:stripe, ...)`), or what `_bare_value` turns down."""
    if op in _CODE_OPERATORS or data[span[0] - 1 : span[0]] == b"(":
        return None
    return _bare_value(data, span)


_ENV_NAME = re2.compile(rb"^[A-Z][A-Z0-9_]*$")
_COMMAND_WORD = re2.compile(rb"^(?:\.{0,2}/|~/)?[a-z][\w./-]*(?:\s|$)")
# What may stand before a command on its line: a prompt, a separator, `env`, `sudo`, `export`
# is no command prefix (its value is the whole rest), another variable set for the command.
_COMMAND_START = re2.compile(rb"(?:^|[$#>;|&(]|\benv|\bsudo|=\S*)\s*$")


def _a_commands_word(data: bytes, name_span: tuple[int, int], value: tuple[int, int]) -> bool:
    """Whether `name=value` is one word of a command line, its value the whole word however
    the line goes on: a variable set for the command (`_command_environment`), or a JVM's or
    Gradle's property (`java -Dkey.pass=... -jar`, `gradle -PsigningPassword=...`)."""
    return data[name_span[0] : name_span[0] + 2] in (b"-D", b"-P") or _command_environment(
        data, name_span, value
    )


def _command_environment(data: bytes, name_span: tuple[int, int], value: tuple[int, int]) -> bool:
    """Whether `NAME=value` sets a variable for the command after it on the line, in the
    shell's way (`PGPASSWORD=... psql -h db`): an environment variable's name at the start of
    a command, and a command's word after the value's blank. Its value is then the whole
    unquoted word, judged as any assigned value is, however the line goes on."""
    name = data[name_span[0] : name_span[1]]
    line_start = data.rfind(b"\n", max(0, name_span[0] - MAX_BARE_BYTES), name_span[0]) + 1
    before = data[line_start : name_span[0]]
    after = data[value[1] : value[1] + MAX_BARE_BYTES]
    return (
        found_in(_ENV_NAME, name)
        and after[:1] in (b" ", b"\t")
        and found_in(_COMMAND_WORD, after.lstrip(b" \t"))
        and found_in(_COMMAND_START, before)
    )


def _default(op: bytes, span: tuple[int, int], data: bytes) -> tuple[int, int] | None:
    """The default's span in a shell's `${NAME:-default}` or `${NAME:=default}`, or in a
    property placeholder's `${NAME:default}` (Spring, Quarkus); None for the shell's
    `${NAME:?message}` and `${NAME:+alternate}`."""
    if op == b":=":
        return span
    if op != b":":
        return None
    first = data[span[0] : span[0] + 1]
    if first == b"-":
        return span[0] + 1, span[1]
    return None if first in (b"?", b"+") else span


def _token68(value: str) -> bool:
    """The characters HTTP credentials are written in (RFC 7235's token68, and ~ and :)."""
    return bool(value) and all(c.isascii() and (c.isalnum() or c in "-._~+/=:") for c in value)


def _bare_value(data: bytes, span: tuple[int, int]) -> tuple[int, int] | None:
    """An unquoted value's span without the brackets that close around it, or None when
    it is code: a call or an index (`os.environ[`, `getenv(`), a PowerShell cmdlet given
    options (`ConvertTo-SecureString -String $env:PW`), or the first word of a longer
    command (`Read-Host -AsSecureString`) unless it looks machine-made (`-e PW=... -d`)."""
    start, end = span
    following = data[end : end + 1]
    if following in (b"(", b"[") or data[end - 1 : end] in (b"(", b"["):
        return None
    if method_call(data[start : min(end, start + MAX_BARE_BYTES)].decode("utf-8", "ignore")):
        return None  # `password: Map.fetch!(secrets, "db")`: the call is in the value
    end = _closed_around(data, start, end)
    if end - start > 2 and data[start] == ord("{") and data.find(b"}", start, end) == end - 1:
        # one pair of braces around it: a template's field (`password={password}`, str.format's
        # and a URI template's), or a value set apart, judged without them
        if is_placeholder(_text(data, (start, end))):
            return None
        start, end = start + 1, end - 1
    if end == start:
        return None
    end = max(start, _char_start(data, min(end, start + MAX_BARE_BYTES)))  # between characters
    end = _through_ampersands(data, start, end)
    # What follows on the line, as far as its first few bytes tell (a line with no end in
    # sight must not be copied once per candidate)
    rest = data[end : end + MAX_BARE_BYTES].split(b"\n", 1)[0].strip()
    ends_line = not rest or rest.startswith((b"#", b"//", b";", b",", b"\\", b")", b"}", b"]"))
    if rest[:1] == b"-" and found_in(_CMDLET, data[start:end]):
        return None  # a PowerShell cmdlet given options: `ConvertTo-SecureString -String $x`
    if not ends_line and not token_like(_text(data, (start, end))):
        return None
    return start, end


def _closed_around(data: bytes, start: int, end: int) -> int:
    """Where the value in data[start:end] ends without the brackets, colons and braces that
    close around it (`{"password": abc}`), but for the braces of its own (`{password}`,
    `{Qm8x...}`): the closing braces it opened are kept, the rest go. In C's steps, not one
    Python step a byte (a value followed by 500 braces, a line after line)."""
    core = start + len(data[start:end].rstrip(b")]}:"))
    tail = data[core:end]  # closers only: none opens a brace
    excess = data.count(b"}", start, end) - data.count(b"{", start, end)
    keep = tail.count(b"}") - max(0, excess)
    if keep <= 0:
        return core
    return end - len(tail.split(b"}", keep)[-1])  # just after the last brace kept


# What `&`s join to an unquoted value: each part up to the next blank, quote or separator.
_AMPERSAND_PARTS = re2.compile(rb"^(?:&[^\s\"'`,;&\\<]+)+")


def _through_ampersands(data: bytes, start: int, end: int) -> int:
    """Where an unquoted value ends that an `&` seems to end at `end`: `&` is a character of
    a .env or .properties value (`DB_PASSWORD=t8$o0Ay$l&bT`), but for the parts from one
    that holds a name and `=`, as in a URL's query (`?password=...&user=...`), and a command
    line's `&&`."""
    if data[end : end + 1] != b"&":
        return end
    found = search_spans(_AMPERSAND_PARTS, data[end : start + MAX_BARE_BYTES], 0)
    if found is None:
        return end
    for part in data[end : end + found[0][1]].split(b"&")[1:]:
        if b"=" in part:
            break
        end += 1 + len(part)
    return end


def _property_calls(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    for spans in _matches(PROPERTY_CALL, data, overflow, named=_PROPERTY_NAMED):  # name, values
        value_span = first_set(spans, range(2, 6))
        if value_span is None or spans[5][0] >= 0 or _inside(known, value_span):
            continue  # a bare second argument is a variable
        start, end = value_span
        if end - start > 4 and data[start : start + 2] == b'\\"' == data[end - 2 : end]:
            value_span = (start + 2, end - 2)  # buildConfigField's "\"value\""
        elif end - start > 2 and data[start : start + 1] == b'"' == data[end - 1 : end]:
            value_span = (start + 1, end - 1)  # and Groovy's '"value"'
        value = _text(data, value_span)
        if b" " in data[start:end] and b"\n" in data[spans[1][1] : start]:
            continue  # add_error(\n "password",\n "Passwords do not match"\n): a message
        found = _named_found(
            "assigned-credential", _text(data, spans[1]), value, value_span, quoted=True
        )
        if found is not None:
            yield found


# An expansion in an unquoted word, as shells, Tcl and CMake read one: `FORMAT_$format`.
_EXPANSION = re2.compile(rb"\$[A-Za-z_{(]")


# A reader's own test of a name and its value before they are judged (`_named_found`): the
# name, the value, and whether the value was quoted.
Kept = Callable[[str, str, bool], bool]


def _name_and_value(pattern: TwoPass, *, expands: bool = False, kept: Kept | None = None) -> Reader:
    """The reader of a pattern whose groups are a name and the value's dq, sq, bq, bare.
    `expands`: the pattern's commands expand an unquoted value (`set key FORMAT_$format`,
    `set token [EvalAttached $x]`: a variable's value, a command's output), which is then
    no literal. `kept`: the pattern's own test of a name and its value, before judging."""
    index = pattern.parse.groupindex
    name_group = index[b"name"]
    value_groups = [index[group] for group in (b"dq", b"sq", b"bq")]
    bare_group = index[b"bare"]
    named = _named(pattern)

    def read(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
        for spans in _matches(pattern, data, overflow, named=named):
            bare_span = spans[bare_group]
            bare = bare_span[0] >= 0
            value_span: tuple[int, int] | None
            if bare:  # value={password}: a template's expression
                opens = data[bare_span[0] : bare_span[0] + 1]
                expanded = expands and (
                    opens == b"[" or found_in(_EXPANSION, data[bare_span[0] : bare_span[1]])
                )
                value_span = None if opens == b"{" or expanded else _bare_value(data, bare_span)
            else:
                value_span = first_set(spans, value_groups)
            name_span = spans[name_group]
            if value_span is None or _inside(known, value_span):
                continue
            name = _text(data, name_span)
            value_bytes = data[value_span[0] : value_span[1]]
            if name.lower() in _AUTHORIZATION and search_spans(SCHEME, value_bytes, 0):
                # a HAR's {"name": "Authorization", "value": "Bearer ..."}: after its scheme
                header = _authorization_credential(data, *value_span)
                if header is not None:
                    yield Found("assigned-credential", *header)
                continue
            value = _text(data, value_span)
            if kept is not None and not kept(name, value, not bare):
                continue
            found = _named_found("assigned-credential", name, value, value_span, quoted=not bare)
            if found is not None:
                yield found

    return read


def _spaced_setting_kept(name: str, value: str, quoted: bool) -> bool:
    """SPACED_SETTING's test: an unquoted value only under a password's name, mixing three
    kinds of character, as a password in prose must: "password combination." on a line of
    its own is a sentence's, and a settings table's row (`token_accessor  JiKso...`) is the
    table's reader's to judge; nor a path (jest's `PASS src/App.test.js`)."""
    return quoted or (
        names_a_password(name) and strong_credential(value) and not names_a_file(value)
    )


def _env_pairs(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """An environment variable's value in a {name, value} record (ENV_PAIR), under a name
    that is no credential's (NAMED_PAIR's) nor a digest's or an id's (`names_no_key`):
    made by chance, as a key under a vendor's name is (`made_by_chance`)."""
    for spans in _matches(ENV_PAIR, data, overflow, named=_env_pair_named):
        span = spans[2]
        if _inside(known, span):
            continue
        value = _text(data, span)
        if key_by_look(value) and not is_placeholder(value):
            yield Found("env-pair-key", span[0], span[1], value)


def _fixed_tables(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """The cells under a credential's column of a table whose columns the rule of dashes
    below its header sets (FIXED_TABLE): each row's text within the column's extent, up to
    the next column's, judged as a table's cell is (`_cell_credential`). The rows end at a
    blank line or one shorter than the column's start."""
    state = [0, 0]  # where the rows were read to, and how many values were judged
    for spans in _matches(FIXED_TABLE, data, overflow, _resumed(state), _FIXED_NAMED):
        name_start, name_end = spans[1]
        header_start = data.rfind(b"\n", 0, name_start) + 1
        rule_start = data.find(b"\n", name_end) + 1
        rule_end = _line(data, rule_start)
        if rule_end is None or name_start - header_start > MAX_ROW_BYTES:
            continue
        extents = _dash_runs(data[rule_start:rule_end].rstrip(b"\r"))
        offset = name_start - header_start
        column = next((i for i, (a, b) in enumerate(extents) if a <= offset < b), None)
        if column is None:
            continue
        start = extents[column][0]
        end = extents[column + 1][0] if column + 1 < len(extents) else MAX_ROW_BYTES
        name = _text(data, spans[1])
        row = rule_end + 1
        while (row_end := _line(data, row)) is not None:
            # columns are characters wide, not bytes: a row is read as its text
            line = _text(data, (row, row_end)).rstrip("\r")
            first_char, last_char = _display_slice(line, start, end)
            if not line.strip() or first_char >= len(line):
                break  # a blank line, or one that ends before the column
            state[1] += 1
            if state[1] > MAX_CANDIDATES:
                overflow.append(row)
                return
            cell = line[first_char:last_char]
            value = cell.strip()
            if value and " " not in value and _cell_credential(name, value):
                before = line[: first_char + len(cell) - len(cell.lstrip())]
                first = row + len(before.encode("utf-8", "surrogatepass"))
                span = (first, first + len(value.encode("utf-8", "surrogatepass")))
                if not _inside(known, span):
                    yield Found("table-credential", span[0], span[1], value)
            row = row_end + 1
        state[0] = row


def _display_slice(line: str, start: int, end: int) -> tuple[int, int]:
    """The characters of `line` shown in the columns start..end of a terminal, where East
    Asian wide characters take two (a table's padding counts them so)."""
    if line.isascii():
        return min(start, len(line)), min(end, len(line))
    column, first, last = 0, len(line), len(line)
    for i, char in enumerate(line):
        if column >= start and first == len(line):
            first = i
        if column >= end:
            last = i
            break
        column += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return first, last


def _dash_runs(rule: bytes) -> list[tuple[int, int]]:
    """The extents of a rule's runs of dashes (`----  --------`), as offsets in its line."""
    runs: list[tuple[int, int]] = []
    start = -1
    for i, byte in enumerate(rule + b" "):
        if byte == ord("-") and start < 0:
            start = i
        elif byte != ord("-") and start >= 0:
            runs.append((start, i))
            start = -1
    return runs


def _credential_sections(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """The entries of an INI section named for passwords or secrets (CREDENTIAL_SECTION), up
    to the next section or a blank line: each `name=value`'s value judged as a table's cell
    under a password's or a secret's name, but not under a name that says what else it is
    (user, login, url, host: `_NOT_SECRET_ENTRIES`)."""
    judged = 0
    for spans in _matches(CREDENTIAL_SECTION, data, overflow):
        # judged under the singular, which names one (a plural describes a list)
        section = "password" if b"passw" in data[spans[1][0] : spans[1][1]].lower() else "secret"
        row = spans[0][1]
        while (row_end := _line(data, row)) is not None:
            line = data[row:row_end].rstrip(b"\r")
            if not line.strip() or line.lstrip().startswith(b"["):
                break
            judged += 1
            if judged > MAX_CANDIDATES:
                overflow.append(row)
                return
            key, equals, rest = line.partition(b"=")
            value = rest.strip()
            start = row + len(key) + 1 + len(rest) - len(rest.lstrip())
            span = (start, start + len(value))
            name = key.strip().lower()
            if (
                equals
                and 0 < len(value) <= MAX_SECTION_VALUE_BYTES
                and not line.lstrip().startswith((b";", b"#"))
                and name.split(b".")[-1] not in _NOT_SECRET_ENTRIES
                and not _inside(known, span)
            ):
                text = _text(data, span)
                if _cell_credential(section, text):
                    yield Found("table-credential", span[0], span[1], text)
            row = row_end + 1


# A longer entry is a document or a blob, not a password: it is not judged.
MAX_SECTION_VALUE_BYTES = 512
# Entries of a credentials section that are not the secret: who, where, how.
_NOT_SECRET_ENTRIES = frozenset(
    {b"user", b"username", b"login", b"email", b"name", b"url", b"host", b"helper", b"domain"}
)


# The numbers of a list of bytes, read again from where BYTE_ARRAY's value starts: a match
# longer than FIRST_PARSED_BYTES is parsed by its start (search_parsed), so the value's span
# can end where the list does not (a 64-byte key one number a line; a table of 256).
_BYTE_LIST = re2.compile(
    rb"(?:(?:0[xX][0-9A-Fa-f]{1,2}|[0-9]{1,3})[ \t]*,\s*)*(?:0[xX][0-9A-Fa-f]{1,2}|[0-9]{1,3})"
)
# As far as a list of 64 numbers is read (a number, a comma and a line's indentation each)
_MAX_BYTE_LIST = 64 * 64


def _byte_arrays(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """A key written as its bytes (BYTE_ARRAY): 16 to 64 numbers of a byte each under a
    key's name, judged as the hex they spell (so all zeros, a count from 0 or a published
    key is none). Not a count by any step (RFC 8439's test key, 00 01 ... 1f), nor numbers
    that all stay below 0x80 (lengths, counts, scores, an enum's values): 16 random bytes
    do so once in 65,536."""
    verdicts: dict[tuple[str, str], bool] = {}  # a flood repeats the same array
    for spans in _matches(BYTE_ARRAY, data, overflow, named=_ARRAY_NAMED):
        start = spans[2][0]
        stop = min(len(data), start + _MAX_BYTE_LIST)
        whole = match_spans(_BYTE_LIST, data, start, stop)
        if whole is None or (whole[0][1] == stop and stop < len(data)):
            continue  # longer than any key's list
        span = whole[0]
        numbers = data[span[0] : span[1]].replace(b",", b" ").split()
        if not 16 <= len(numbers) <= 64 or _inside(known, span):
            continue
        values = [int(n, 16) if n[1:2] in (b"x", b"X") else int(n) for n in numbers]
        if max(values) > 255 or max(values) < 0x80:
            continue
        if len({(b - a) % 256 for a, b in itertools.pairwise(values)}) == 1:
            continue  # counted out: 0, 1, 2, ... or 0x10, 0x20, ...
        key = (_text(data, spans[1]), bytes(values).hex())
        accepted = verdicts.get(key)
        if accepted is None:
            accepted = verdicts[key] = _named_value(*key)
        if accepted:
            yield Found("byte-array-key", span[0], span[1], _text(data, span))


# Verbs whose calls take a credential's name or check one, not set one: getSecret("name"),
# checkPassword(input).
_NOT_SETTER_VERBS = frozenset(
    {
        *("get", "fetch", "read", "load", "find", "lookup", "has", "is", "check", "validate"),
        *("verify", "compare", "hash", "delete", "remove", "clear", "reset", "rotate"),
        *("generate", "create", "encrypt", "decrypt", "encode", "decode", "parse", "print"),
        *("log", "expect", "assert"),
    }
)


def _quoted_value(pattern: TwoPass, *, kept: Kept | None = None) -> Reader:
    """The reader of a pattern whose groups are a name and a quoted value's dq and sq (a
    pair's, TUPLE_PAIR and KEYWORD_PAIR, a Lisp form's, LISP_SET, or a comparison's): the
    value, judged under the name. `kept`: as `_name_and_value`'s."""
    index = pattern.parse.groupindex
    name_group, dq, sq = index[b"name"], index[b"dq"], index[b"sq"]
    named = _named(pattern)

    def read(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
        for spans in _matches(pattern, data, overflow, named=named):
            value_span = spans[dq] if spans[dq][0] >= 0 else spans[sq]
            if _inside(known, value_span):
                continue
            value = _text(data, value_span)
            name = _text(data, spans[name_group])
            if kept is not None and not kept(name, value, True):
                continue
            found = _named_found("assigned-credential", name, value, value_span, quoted=True)
            if found is not None:
                yield found

    return read


def _list_pair_kept(name: str, value: str, quoted: bool) -> bool:
    """LIST_PAIR's test: under a key's or a token's name, not words run together in capitals,
    which a map's or an enum's labels are (`new Map([["refresh_token", "RefreshTokenKey1"],
    ["api_key", "ApiKeyAuth"]])`)."""
    return names_a_password(name) or not found_in(_CAPITALISED_WORDS, value.encode())


_CAPITALISED_WORDS = re2.compile(rb"^(?:[A-Z][a-z]+){2,}[0-9]{0,3}$")


def _setter_calls(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    for spans in _matches(SETTER_CALL, data, overflow, named=_SETTER_NAMED):  # name, dq, sq
        value_span = spans[2] if spans[2][0] >= 0 else spans[3]
        words = name_words(_text(data, spans[1]))
        if not words or words[0] in _NOT_SETTER_VERBS or _inside(known, value_span):
            continue
        if _constructed(data, spans[1][0]):
            continue  # new aws.secretsmanager.Secret("appDbPassword"): a resource's name
        value = _text(data, value_span)
        found = _named_found(
            "assigned-credential", _text(data, spans[1]), value, value_span, quoted=True
        )
        if found is not None:
            yield found


def _constructed(data: bytes, name_start: int) -> bool:
    """Whether the call whose name starts at `name_start` follows `new` (a qualified name
    between: `new k8s.core.v1.Secret(`); read back at most a name's length."""
    head = data[max(0, name_start - MAX_NAME_CHARS - 4) : name_start]
    path = head.rstrip(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$.")
    return path.endswith((b"new ", b"new\t"))


def _cli_options(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """A long option's value; a bare one without the brackets that close around it, as in
    `"$(gcloud secrets versions access latest --secret=name)"`."""
    bare = CLI_OPTION.parse.groupindex[b"bare"]
    for spans in _matches(CLI_OPTION, data, overflow, named=_OPTION_NAMED):
        value_span = first_set(spans, range(2, 5))
        if value_span is not None and value_span == spans[bare]:
            value_span = (value_span[0], _closed_around(data, *value_span))
        if value_span is None or value_span[1] == value_span[0] or _inside(known, value_span):
            continue
        value = _text(data, value_span)
        if _named_value(_text(data, spans[1]), value):
            yield Found("cli-option-credential", value_span[0], value_span[1], value)


def _element_text(pattern: TwoPass) -> Reader:
    """The reader of a pattern whose groups are a name and an XML element's text: the
    element named so (`<apiToken>...</apiToken>`), or one an attribute names."""

    named = _named(pattern)

    def read(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
        for spans in _matches(pattern, data, overflow, named=named):
            name_span, value_span = spans[1], spans[2] if spans[2][0] >= 0 else spans[3]
            if _inside(known, value_span):
                continue
            value = _text(data, value_span)
            name = _text(data, name_span)
            if name == "key" and _plist_entry_name(data, value, value_span[1]):
                continue  # a property list's <key>: an entry's name (CFBundleURLTypes)
            if _named_value(name, value):
                yield Found("xml-element-credential", value_span[0], value_span[1], value)

    return read


# A property list's key that is words joined by dots or dashes (`aps-environment`,
# `com.apple.developer.associated-domains`): an entry's name; a token in its place is read.
_DOTTED_WORDS = re2.compile(rb"^[a-z][a-z0-9]*(?:[.-][a-z][a-z0-9]*)+$")
# The elements that hold a property list's values: what follows each <key>.
_PLIST_VALUES: tuple[bytes, ...] = (b"<string", b"<array", b"<dict", b"<true", b"<false")
_PLIST_VALUES += (b"<integer", b"<real", b"<data", b"<date")


def _plist_entry_name(data: bytes, value: str, end: int) -> bool:
    """Whether a <key>'s text `value` (ending at `end`) names a property list's entry: a
    word (CFBundleURLTypes), or words joined by dots or dashes with a value element after."""
    if value.isascii() and value.isalpha():
        return True
    words = found_in(_DOTTED_WORDS, value.encode("utf-8", "surrogatepass"))
    return words and _plist_value_after(data, end)


def _plist_value_after(data: bytes, end: int) -> bool:
    """Whether the text that ends at `end` closes a <key> that a property list's value
    follows: the <key> is its entry's name (`com.apple.developer.associated-domains`, then
    an <array>)."""
    rest = data[end : end + 128].lstrip()
    return rest.startswith(b"</key>") and rest[6:].lstrip().startswith(_PLIST_VALUES)


def _curl_users(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """`-u user:password`: the password; with a dummy one (`_dummy_password`), the user is
    an API key."""
    for spans in _matches(CURL_USER, data, overflow):
        begin = spans[0][0]
        if begin and not data[begin - 1 : begin].isspace():
            continue  # x-user: a name's dash, not an option's
        user_span, password_span = spans[1], spans[2]
        password = _text(data, password_span).strip("{}")
        user = _text(data, user_span).strip("{}")
        joined = _text(data, (user_span[0], password_span[1]))
        if is_placeholder(joined) and (
            joined.startswith(("<", "{", "$", "[")) or not key_by_look(password)
        ):
            # -u <user:password>, -u "${USER}:${PASSWORD}", a documentation's user at
            # example.com and its YourPassword123!; a key made by chance stays one
            continue
        if _inside(known, password_span if password else user_span):
            continue
        if password and looks_like_credential(password):
            yield Found("curl-user-credential", password_span[0], password_span[1], password)
        elif _dummy_password(password) and token_like(user):
            yield Found("curl-user-credential", user_span[0], user_span[1], user)


def _dummy_password(password: str) -> bool:
    """A password that says the user is the key: none (`-u KEY:`), a dummy X (Freshdesk's
    docs) or the name of a token or a key, what the user is (Toggl's `TOKEN:api_token`);
    not a password's name (`alice:passwd`)."""
    lowered = password.lower()
    return password in ("", "X", "x") or (
        password.isidentifier() and ("token" in lowered or "key" in lowered)
    )


# One argument of a command: quoted parts and bare ones run together (`--body="a b"`), after
# blanks and a line's continuation (a backslash, then the next line).
_ARGUMENT = re2.compile(
    rb"[ \t]*(?:\\\r?\n[ \t]*)*((?:\"[^\"\n]*\"|'[^'\n]*'|\\[^\r\n]|[^\s\"'\\;&|])+)"
)
# A command's arguments are read this far at most, and a text's this many in all: past them
# the rest of the text is reported unverified, as past a reader's candidates (a megabyte of
# `secrets set a=b` is 65,000 arguments, 270 ms).
MAX_COMMAND_BYTES = 4096
MAX_COMMAND_ARGUMENTS = 64
MAX_COMMAND_ARGUMENTS_READ = 4096
# By the command's first word: the options whose value is the secret's whole value, and
# whether its KEY=VALUE arguments are the secret's fields.
_SECRET_OPTIONS: dict[bytes, tuple[tuple[bytes, ...], bool]] = {
    b"create": ((), False),  # kubectl's and oc's fields come with --from-literal
    b"gh": ((b"--body", b"-b"), False),
    b"keyvault": ((b"--value",), False),
    b"vault": ((), True),
    b"secrets": ((), True),
}


def _secret_commands(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """The values a command that stores a secret is given (SECRET_COMMAND): a field's
    (`--from-literal=KEY=VALUE`, or Vault's and the platforms' `KEY=VALUE`) as `_field`
    judges it, and the secret's whole value (`--body VALUE`, `-bVALUE`, `--value=VALUE`)
    under the secret's name (gh's first argument, az's `--name`) as `_secret_value` does.
    Never a variable's expansion, a file's contents (`@file`, `-` for stdin) or a
    placeholder."""
    reached, budget = [0], [MAX_COMMAND_ARGUMENTS_READ]
    for spans in _matches(SECRET_COMMAND, data, overflow, _resumed(reached)):
        command = data[spans[1][0] : spans[1][1]]
        options, pairs = _SECRET_OPTIONS[command.split(None, 1)[0]]
        arguments = list(_arguments(data, spans[0][1] - 1, budget))
        name, values, fields = _parsed_command(data, arguments, options, pairs)
        for span in fields:
            found = _field(data, span, known)
            if found is not None:
                yield found
        for span in values:
            found = _secret_value(data, span, known, name)
            if found is not None:
                yield found
        reached[0] = arguments[-1][1] if arguments else spans[0][1]
        if budget[0] <= 0:
            if reached[0] < len(data):
                overflow.append(reached[0])
            return


def _arguments(data: bytes, pos: int, budget: list[int]) -> Iterator[tuple[int, int]]:
    """The spans of a command's arguments from `pos` to its end (a line's end, a `;`, a
    `|`, a `&`, a comment), MAX_COMMAND_ARGUMENTS and MAX_COMMAND_BYTES at most, each one
    taken from `budget[0]` (the text's MAX_COMMAND_ARGUMENTS_READ)."""
    stop = min(len(data), pos + MAX_COMMAND_BYTES)
    for _ in range(MAX_COMMAND_ARGUMENTS):
        if budget[0] <= 0:
            return
        budget[0] -= 1
        argument = match_spans(_ARGUMENT, data, pos, stop)
        if argument is None or data[argument[1][0] : argument[1][0] + 1] == b"#":
            return
        yield argument[1]
        pos = argument[1][1]


def _parsed_command(
    data: bytes, arguments: list[tuple[int, int]], options: tuple[bytes, ...], pairs: bool
) -> tuple[str | None, list[tuple[int, int]], list[tuple[int, int]]]:
    """A secrets command's arguments read: the secret's name (gh's first argument, az's
    `--name`/`-n`), the spans of its whole value (after one of `options`) and of its
    KEY=VALUE fields (after `--from-literal=`, or bare where `pairs`)."""
    secret_name: str | None = None
    values: list[tuple[int, int]] = []
    fields: list[tuple[int, int]] = []
    expects = None  # what the argument before says this one is: b"value" or b"name"
    for start, end in arguments:
        word = data[start:end]
        option, equals, _ = word.partition(b"=")
        after = (start + len(option) + 1, end)
        if expects is not None:
            if expects == b"value":
                values.append((start, end))
            else:
                secret_name = _text(data, _unquoted(data, (start, end)))
            expects = None
            continue
        if option in options or (options and option in (b"--name", b"-n")):
            kind = b"name" if option in (b"--name", b"-n") else b"value"
            if not equals:
                expects = kind
            elif kind == b"value":
                values.append(after)  # --value=VALUE
            else:
                secret_name = _text(data, _unquoted(data, after))
        elif b"-b" in options and word.startswith(b"-b") and not word.startswith(b"-b="):
            values.append((start + 2, end))  # -bVALUE
        elif options and secret_name is None and not word.startswith(b"-"):
            secret_name = _text(data, _unquoted(data, (start, end)))  # gh's NAME
        elif option == b"--from-literal" and equals:
            fields.append(after)
        elif pairs and equals and not word.startswith(b"-"):
            fields.append((start, end))
    return secret_name, values, fields


def _secret_value(
    data: bytes, span: tuple[int, int], known: Reported, name: str | None
) -> Found | None:
    """The secret's whole value at `span`, judged under the secret's `name` as `_judged`
    judges a field's, or under no name found, as a password that is no host's, address's,
    path's, UUID's or words' (us-east-1)."""
    span = _unquoted(data, span)
    value = _text(data, span)
    if not _stored(value, span, known):
        return None
    if name is not None:
        judged = _judged(name, value, password=True)
    else:
        judged = password_value(value) and _plain_secret(value)
    return Found("secret-command-value", span[0], span[1], value) if judged else None


def _field(data: bytes, span: tuple[int, int], known: Reported) -> Found | None:
    """A secret's field, KEY=VALUE at `span`: its value, if `_judged` under KEY."""
    start, end = _unquoted(data, span)
    cut = data.find(b"=", start, end)
    if cut <= start:
        return None
    name = _text(data, _unquoted(data, (start, cut)))
    span = _unquoted(data, (cut + 1, end))
    value = _text(data, span)
    if not _stored(value, span, known) or not _judged(name, value):
        return None
    return Found("secret-command-value", span[0], span[1], value)


def _judged(name: str, value: str, *, password: bool = False) -> bool:
    """A value a secrets command holds under `name`: as a value bound to a credential's name
    (`_named_value`); under no name of a digest's, an id's or a setting's (`names_no_key`: a
    secret's fields and CI's secrets also hold a build's commit, an account's id, a region,
    a host), a key by its look (`key_by_look`), or with `password`, a password of its own
    (`_plain_secret`)."""
    if credential_name_strength(name) > 0:
        return _named_value(name, value)
    if names_no_key(name):
        return False
    return key_by_look(value) or (password and password_value(value) and _plain_secret(value))


# Lower-case words and numbers joined by hyphens: a region's, a project's or a host's name.
_HYPHENATED_NAME = re2.compile(rb"^[a-z0-9]+(?:-[a-z0-9]+)+$")


def _plain_secret(value: str) -> bool:
    """A password that is no host's or address's (a dot, an @), no path or URL (/ :), no
    UUID, no number and no hyphenated name (`us-east-1`, `acme-prod-412907`)."""
    if any(c in value for c in ".@/:") or value.lstrip("-").isdigit() or is_uuid(value):
        return False
    return not found_in(_HYPHENATED_NAME, value.encode("utf-8", "surrogatepass"))


def _stored(value: str, span: tuple[int, int], known: Reported) -> bool:
    """Whether a command's `value` is one it stores: no variable's expansion, no file (`@`,
    `-` for stdin), no placeholder, and no secret found already. A value that still opens
    with a quote once unquoted is a word the shell pieces together (`'='kubectl`): not the
    text it stores, and not reported as if it were."""
    if not value or value.startswith(("$", "@", "<", "'", '"', "`")) or value == "-":
        return False
    return not _inside(known, span) and not is_placeholder(value)


def _terraform_outputs(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """An output of `terraform output -json` named for a credential, and its value."""
    for spans in _matches(TERRAFORM_OUTPUT, data, overflow, named=_TERRAFORM_NAMED):
        name_span, value_span = spans[1], spans[2]
        if _inside(known, value_span):
            continue
        value = _text(data, value_span)
        name = _text(data, name_span)
        found = _named_found("assigned-credential", name, value, value_span, quoted=True)
        if found is not None:
            yield found


# A table's rule: dashes, pluses, the box-drawing characters, blanks and delimiters alone.
_TABLE_RULE = re2.compile("^[-=+|:│┃─━┼╋├┤┌┐└┘┬┴ \t]*$".encode())
_BOX_BARS = ("|", "│", "┃")
# What a tool prints in a value's place when it shows none: `vercel env ls`' Encrypted,
# consoles' Hidden, Sensitive, Redacted, Masked.
_SHOWN_HIDDEN = frozenset({"encrypted", "hidden", "sensitive", "redacted", "masked", "secret"})
MAX_SETTING_ROWS = 200


def _setting_rows(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """Each row of a settings table (SETTING_TABLE): the cell under the header's name cell
    a name, the next one its value, judged as a name's value is (`_named_value`). Rows are
    read to the first blank line or one that is no row, MAX_SETTING_ROWS at most, a table's
    rules passed over. Each row read counts as a candidate: past MAX_CANDIDATES, the rest is
    unverified."""
    reached, read = [0], 0
    for spans in _matches(SETTING_TABLE, data, overflow, _resumed(reached)):
        delimiter = data[spans[_SETTING_DELIMITER][0] : spans[_SETTING_DELIMITER][1]]
        bar = delimiter.strip().decode("utf-8", "replace")
        lead = data[spans[_SETTING_LEAD][0] : spans[_SETTING_LEAD][1]].decode("utf-8", "replace")
        skip = sum(lead.count(b) for b in _BOX_BARS)  # the cells before the name's
        head = data[spans[_SETTING_HEAD][0] : spans[_SETTING_HEAD][1]]
        if not bar and head[:6].lower() == b"output" and not head.isupper():
            continue  # 'Output value of the function' is prose; `| Output | Value |` a table
        if skip and bar not in _BOX_BARS:
            continue
        row = spans[0][1]
        for _ in range(MAX_SETTING_ROWS):
            if read >= MAX_CANDIDATES:
                overflow.append(row)
                return
            read += 1
            end = _line(data, row)
            if end is None:
                break
            line = data[row:end].decode("utf-8", "surrogatepass").rstrip("\r")
            if not line.strip():
                break
            if not found_in(_TABLE_RULE, line.encode("utf-8", "surrogatepass")):
                cell = _setting_cell(line, bar, skip)
                if cell is None:
                    break
                name, (a, b) = cell
                start = row + len(line[:a].encode("utf-8", "surrogatepass"))
                span = (start, start + len(line[a:b].encode("utf-8", "surrogatepass")))
                value = line[a:b]
                if (
                    value
                    and _setting_value(value)
                    and not _inside(known, span)
                    and (_named_value(name, value) or _unnamed_password(name, value))
                ):
                    yield Found("table-credential", span[0], span[1], value)
            row = end + 1
        reached[0] = row


def _unnamed_password(name: str, value: str) -> bool:
    """A person's password (`human_password`: `Mosaic1983!juniper`) in a settings row whose
    name says nothing of what it holds (`risingwave.compass`), as vendor-named-hex takes one
    after `NAME=`: not a name that sounds like a credential's, which `_named_value` judged
    (password_policy, token_ttl), nor one that names something else (`names_no_key`)."""
    lowered = name.lower()
    sounds = any(sound in lowered for sound in _CREDENTIAL_SOUNDS)
    if (sounds and not names_a_look_alike(name)) or names_no_key(name):
        return False
    return human_password(value)


# Parts of a credential's name, as substrings (compass and bypass sound so: look-alikes).
_CREDENTIAL_SOUNDS = ("pass", "pw", "secret", "token", "key", "cred", "auth")


# What a settings table shows that is no value of a credential's: a path (`C:\Program Files`,
# `/usr/bin/ssh-askpass`), a list or an object, a note in brackets, a .NET type's name
# (PowerShell prints `System.Management.Automation.PSCredential` for an object).
_NOT_SETTING_VALUE = re2.compile(
    rb"^(?:[A-Za-z]:[\\/]|[/\\~.]|[\[{(<]|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*){2,}$)"
)


def _setting_value(value: str) -> bool:
    """Whether a settings row's value could be a credential's: not what a tool prints in a
    value's place (`_SHOWN_HIDDEN`) nor a path, a list, a note or a type's name."""
    if value.lower() in _SHOWN_HIDDEN:
        return False
    return not found_in(_NOT_SETTING_VALUE, value.encode("utf-8", "surrogatepass"))


def _setting_cell(line: str, bar: str, skip: int = 0) -> tuple[str, tuple[int, int]] | None:
    """A settings row's name and its value's span in `line`: cells between `bar`s (the
    name in the cell after the first `skip`), or, with no bar, the first word and the next;
    None for no such row. A wiki's value may be marked up as code (`<code>...</code>`): the
    value is what the markup holds."""
    if bar == "!!":  # MediaWiki: `| name || value || ...`
        cells = _wiki_cells(line)
        if cells is None:
            return None
        name, a, b = cells
    elif bar:
        cuts = [i for i, c in enumerate(line) if c in _BOX_BARS]
        inner = line.strip()
        if inner[:1] in _BOX_BARS:
            cuts = cuts[1:]
            first = line.index(inner[0]) + 1
        else:
            first = 0
        if len(cuts) <= skip:
            return None
        name = line[cuts[skip - 1] + 1 if skip else first : cuts[skip]].strip()
        a = cuts[skip] + 1
        b = cuts[skip + 1] if len(cuts) > skip + 1 else len(line)
    else:
        words = line.split(maxsplit=1)
        if len(words) < 2:
            return None
        name = words[0]
        a = line.index(name) + len(name)
        a += len(line[a:]) - len(line[a:].lstrip())
        b = a + len(line[a:].split(maxsplit=1)[0])
    while a < b and line[a] in " \t":
        a += 1
    while b > a and line[b - 1] in " \t":
        b -= 1
    a, b = _inside_marks(line, a, b)
    name = name.strip("`")  # markdown's `NAME`
    if not name or not found_in(_SETTING_NAME, name.encode("utf-8", "surrogatepass")):
        return None
    return name, (a, max(a, b))  # a row with no value is still a row: the next are read


def _wiki_cells(line: str) -> tuple[str, int, int] | None:
    """A MediaWiki table row's first cell, and where its second starts and ends in `line`:
    `| name || value || ...`. None for a row's rule (`|-`), the table's end or caption."""
    opening = line.find("|")
    if opening < 0 or line[:opening].strip() or line[opening + 1 : opening + 2] in "-}+":
        return None
    cut = line.find("||", opening + 1)
    if cut < 0:
        return None
    end = line.find("||", cut + 2)
    return line[opening + 1 : cut].strip(), cut + 2, len(line) if end < 0 else end


# The markup a wiki's or a web page's table sets a value in as code.
_CODE_MARKUP = ("code", "nowiki", "tt", "kbd", "samp")


def _inside_marks(line: str, a: int, b: int) -> tuple[int, int]:
    """`line[a:b]`'s span inside the quotes or the markup that set it apart: a markdown
    code span's backticks (one or two), quotes, or an HTML or wiki tag."""
    for mark in ("``", "`", '"', "'"):
        if b - a > 2 * len(mark) and line.startswith(mark, a) and line.endswith(mark, a, b):
            return a + len(mark), b - len(mark)
    for tag in _CODE_MARKUP:
        if line.startswith(f"<{tag}>", a) and line.endswith(f"</{tag}>", a, b):
            return a + len(tag) + 2, b - len(tag) - 3
    return a, b


# A setting's name; MediaWiki's and PHP's start with a $ ($wgDBpassword).
_SETTING_NAME = re2.compile(rb"^\$?[A-Za-z_][\w.-]{0,63}$")


def _printed_secrets(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """The line a command printed a secret on (PRINTED_SECRET), 8 characters at least, if
    the command printed it straight (no pipe into a digest or a count; `base64 -d` is the
    one kept), judged as `_judged` judges a secret's value under the name printed: the
    variable's (`echo $NAME`), or the field's of what a store hands out (`-field=`, an
    `op://` path's last part, `.data.NAME`, `--query`, `--name`, `--secret`); with no field
    named, as a password that is no host's, path's, UUID's or hyphenated name's."""
    for spans in _matches(PRINTED_SECRET, data, overflow):
        span = spans[_PRINTED_VALUE]
        value = _text(data, span)
        if len(value) < 8 or not _stored(value, span, known):
            continue
        command = data[spans[0][0] : span[0]]
        tick = spans[_PRINTED_TICK]
        if tick[0] >= 0 and b"```" not in data[tick[1] : span[0]]:
            # `echo $KEY` named in a sentence, no output fenced under it; but an agent's
            # "Ran `printenv KEY`" line, then a machine-made value, printed it
            opener = data[spans[0][0] : tick[0]]
            machine_made = token_like(value) and any(c.isdigit() for c in value)
            if not (machine_made and found_in(_RAN, opener)):
                continue
        if any(not part.strip().startswith(b"base64") for part in command.split(b"|")[1:]):
            continue  # echo $KEY | md5sum, op read ... | sha256sum
        by_store = spans[_PRINTED_BY][0] >= 0
        name = _printed_field(command) if by_store else _text(data, spans[_PRINTED_NAME])
        if value.startswith("#!") or (
            name is not None
            and found_in(_CONTENT_FILE, name.encode())
            and found_in(_STRUCTURED_LINE, value.encode())
        ):
            continue  # `cat get_token.sh`, `cat tokens.csv`: a script's or a table's first line
        if name is None:
            judged = password_value(value) and _plain_secret(value)
        else:
            judged = _judged(name, value, password=by_store)
        if judged:
            yield Found("printed-secret", span[0], span[1], value)


# Where a secret store's command names the field it prints, in the order asked: AWS's
# --query, Vault's -field=, a Kubernetes secret's .data.NAME, 1Password's op:// path's last
# part, az's --name, gcloud's --secret.
_PRINTED_FIELDS = [
    re2.compile(pattern)
    for pattern in (
        rb"--query[= ][\"']?([\w.-]+)",
        rb"-field[= ]([\w.-]+)",
        rb"\.data\.([\w.-]+)",
        rb"op://[^\s\"']*/([\w.-]+)",
        rb"--name[= ][\"']?([\w.-]+)",
        rb"--secret[= ]([\w.-]+)",
        rb"cat[ \t]+(?:[^\s|;&]*/)?([^\s|;&/`'\"]+)",
    )
]


# What a table's, a document's or a config's first line holds, and a bare token does not
# (a token alone in db_password.conf is still printed).
# The value is one token (the line has no blank): a document's first line then opens an
# object, a list, a tag or a section (`{`, `[`, `<`, `---`), sets a key (`key=...`, `key:`),
# or is a table's header of plain words (`id,name,token`); a password with a ; or a < is none.
_STRUCTURED_LINE = re2.compile(
    rb"^(?:[{\[<]|-{3}|[A-Za-z_][A-Za-z_.-]*(?::$|=[^=])|[A-Za-z_ ]+(?:[,;\t|][A-Za-z_ ]*)+$)"
)
# A file `cat` prints whose first line is a script's or a document's, not a secret alone.
_CONTENT_FILE = re2.compile(
    rb"(?i)\.(?:sh|bash|zsh|ps1|py|js|ts|rb|go|java|kt|csv|tsv|json|ya?ml|toml|xml|md|html?"
    rb"|ini|cfg|conf|log)$"
)


def _printed_field(command: bytes) -> str | None:
    """The name of the field a secret store's `command` prints, if it names one."""
    for pattern in _PRINTED_FIELDS:
        spans = search_spans(pattern, command, 0)
        if spans is not None:
            return _text(command, spans[1])
    return None


# An agent's transcript line that opens a command in backticks: `Ran `, `⏺ Running `.
_RAN = re2.compile(
    rb"^[ \t]*(?:[-*\x{2022}\x{23FA}\x{25CF}][ \t]+)?(?i:ran|running|executed)[ \t]+$"
)
_PRINTED_NAME, _PRINTED_BY, _PRINTED_VALUE, _PRINTED_TICK = (
    PRINTED_SECRET.parse.groupindex[group] for group in (b"name", b"printer", b"value", b"tick")
)


def _headers(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """`-H 'Authorization: Basic ...'`, `-H "apikey: ..."`, `--header "Api-Token: ..."`."""
    for spans in _matches(HEADER, data, overflow, named=_header_named):
        name = _text(data, spans[1])
        start, end = spans[2]
        raw = data[start:end].rstrip()
        end = start + len(raw)
        if _inside(known, (start, end)):
            continue
        lower = name.lower()
        if lower in _AUTHORIZATION:
            found = _authorization_credential(data, start, end)
            if found is not None:
                yield Found("header-credential", *found)
        elif credential_name_strength(name) and " " not in raw.decode("utf-8", "replace"):
            value = _text(data, (start, end))
            if is_placeholder(value):
                continue
            if looks_like_credential(value) or token_like(value):
                yield Found("header-credential", start, end, value)


def _authorization_credential(data: bytes, start: int, end: int) -> tuple[int, int, str] | None:
    """The credential in the Authorization value at `data[start:end]`, after its scheme (an
    unquoted value's line may go on: a URL), and its text; None for a placeholder, a
    description or no credential."""
    raw = data[start:end]
    if b'="' in raw or b'=\\"' in raw:
        return None  # auth-params (Digest username="...", realm=...): no credential alone
    scheme = search_spans(SCHEME, raw, 0)
    if scheme is not None:
        if is_placeholder(_text(data, (start, start + scheme[0][1]))):
            return None  # Bearer YOUR_API_TOKEN
        start, end = start + scheme[2][0], start + scheme[2][1]
    elif is_placeholder(raw.decode("utf-8", "surrogatepass")):
        return None
    value = _text(data, (start, end))
    if value.endswith("=") and value.rstrip("=").replace("_", "").replace("-", "").isalpha():
        return None  # an auth-param's name, its value cut off at a quote: Digest username=
    if not _token68(value):
        return None  # basic {base64(email:password)}: a description, not a credential
    # a password in Basic's base64 is judged alone: "username:password" encoded looks
    # random, and is a placeholder; with none, a dummy X or a word for a password
    # (Freshdesk's KEY:X, Toggl's TOKEN:api_token), the user is the key
    if authorization(value) or _basic_user_key(value):
        return start, end, value
    return None


def _basic_user_key(value: str) -> bool:
    """For Basic's base64 whose password is no credential: whether its user is a key (no
    pair: the value itself, judged by its look)."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return token_like(value)
    user, colon, password = decoded.partition(":")
    if colon and password:
        return token_like(user)  # KEY:X, TOKEN:api_token
    return token_like(value) or token_like(user)  # KEY: or no pair: by its look, as before


def _header_named(data: bytes, spans: Spans) -> bool:
    """Whether a header's name could carry a credential: Authorization, or a credential's
    name (Content-Type, Accept are passed over, uncounted)."""
    name = _text(data, spans[1])
    return name.lower() in _AUTHORIZATION or bool(credential_name_strength(name))


# A table's row is read only as far as this: a longer line ends the table.
MAX_ROW_BYTES = 1024
_DELIMITERS = b",;\t|"
# What a header's cell holds: a column's name, a word or a few, never a sentence.
_HEADER_CELL = re2.compile(rb"^[\w .()/#'-]{1,40}$")
_HEADER_CHARS = frozenset(" _.()/#'-")


def _header_cell(cell: bytes) -> bool:
    """Whether a header's cell could name a column: _HEADER_CELL, its letters in any script
    (födelsedatum, Contraseña). Those are judged in Python: RE2's class of every letter,
    counted out to 40, is a program its DFA has no room for."""
    if cell.isascii():
        return found_in(_HEADER_CELL, cell)
    name = cell.decode("utf-8", "replace")
    return 0 < len(name) <= 40 and all(c.isalnum() or c in _HEADER_CHARS for c in name)


def _tables(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """A column named for a credential in a table, each row's value in it: a CSV's or a
    markdown table's (`_delimited_rows`), or an SQL INSERT's (`_sql_rows`).

    The search goes on from where the rows ended, so that no line is read more than twice
    (as a row, then as a header). Each value judged counts as a candidate, and past
    MAX_CANDIDATES the rest is unverified.
    """
    state = [0, 0]  # where the rows were read to, and how many values were judged
    for spans in _matches(TABLE, data, overflow, _resumed(state), _table_named):
        rows = _sql_rows if spans[_COLUMNS][0] >= 0 else _delimited_rows
        yield from rows(data, spans, known, state)
        if state[1] > MAX_CANDIDATES:
            overflow.append(state[0])
            return


class _Personal(NamedTuple):
    """A column of personal data that a table's header or an INSERT names: the id of its
    reader's findings, the test a column's name passes, and the one each row's value must
    pass (a personal id's shape, a real date of birth)."""

    rule_id: str
    column: re2._Regexp
    valid: Callable[[str], bool]

    def cell(self, name: str, value: str) -> bool:
        """Whether a table's cell under the column `name` is this data: `valid`, and under
        a short name that other words hold (sin, nie, nir), its document's own check."""
        return self.valid(value) and pii.bare_column_identity(name, value)


_IDENTITY = _Personal(
    "table-identity-number", re2.compile(f"^{ID_COLUMN}$".encode()), pii.identity_number
)
_BIRTH_DATE = _Personal(
    "table-date-of-birth", re2.compile(f"^{DOB_COLUMN}$".encode()), pii.date_of_birth
)
_ADDRESS = _Personal(
    "table-street-address", re2.compile(f"^{ADDRESS_COLUMN}$".encode()), pii.street_line
)


# pandas' print of a DataFrame (df.head(), to_string()): its columns' names set apart by two
# blanks or more, each right-aligned over its values, then rows that start with the index's
# number. A header that names a personal id's, a date of birth's or a credential's column.
DATAFRAME = TwoPass.compile(
    (
        r"(?m:^)[ \t]*(?:[\w.-]+(?: [\w.-]+)* {2,})*"
        rf"(?P<name>{ID_COLUMN}|{DOB_COLUMN}|[\w.-]*{_NAME_WORD}[\w.-]*)"
        r"(?: {2,}[\w.-]+(?: [\w.-]+)*)*[ \t]*\r?\n[ \t]*\d+ {2,}\S"
    ).encode()
)


def _spaced_cells(line: str) -> list[tuple[int, int]]:
    """The spans of a line's cells set apart by two blanks or more (a cell's own words are
    set apart by one: `full name`)."""
    cells: list[tuple[int, int]] = []
    start = None
    i, size = 0, len(line)
    while i < size:
        if line[i] in " \t":
            gap = i
            while i < size and line[i] in " \t":
                i += 1
            if start is not None and (i - gap >= 2 or i == size):
                cells.append((start, gap))
                start = None
            continue
        if start is None:
            start = i
        i += 1
    if start is not None:
        cells.append((start, size))
    return cells


# A DataFrame's column to read: its index among the header's cells, its name, and the
# personal data it holds (None: a credential).
_FrameColumn = tuple[int, str, _Personal | None]


def _frame_columns(cells: list[tuple[int, int]], header: str) -> list[_FrameColumn]:
    """The header's columns that a personal id, a date of birth or a credential names."""
    columns: list[_FrameColumn] = []
    for i, (a, b) in enumerate(cells):
        name = header[a:b]
        encoded = name.encode("utf-8", "surrogatepass")
        personal = next((p for p in (_IDENTITY, _BIRTH_DATE) if found_in(p.column, encoded)), None)
        if personal is not None or credential_name_strength(name) == 2:
            columns.append((i, name, personal))
    return columns


def _frame_cell(line: str, start: int, end: int) -> tuple[int, int] | None:
    """The span of the value pandas right-aligned to end at `end`, after `start`; None if
    nothing ends there (a row of another layout, a value cut short)."""
    if len(line) < end or line[end : end + 1] not in ("", " ") or start >= end:
        return None
    if line[end - 1 : end] == " ":
        return None  # nothing ends where the column's name does
    a = start + len(line[start:end]) - len(line[start:end].lstrip())
    return (a, end) if a < end else None


def _dataframes(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """Each row's value in a DataFrame's column that a personal id, a date of birth or a
    credential names: the cell between the end of the column before it (or the index's
    number) and its own name's end, where pandas aligns it. Rows end at the first line that
    starts with no number (`[5 rows x 3 columns]`, a blank line); each cell looked for
    counts, up to MAX_CANDIDATES. pandas aligns characters, not bytes (`Bergström`): the
    header and each row are read as text."""
    state = [0, 0]  # where the rows were read to, and how many cells were looked for
    for spans in _matches(DATAFRAME, data, overflow, _resumed(state)):
        line_end = data.find(b"\n", spans[_DATAFRAME_NAME][1])
        if line_end - spans[0][0] > MAX_ROW_BYTES:
            continue  # a line too long to be a header: pandas wraps a wide frame's columns
        header = data[spans[0][0] : line_end].rstrip(b"\r").decode("utf-8", "surrogatepass")
        cells = _spaced_cells(header)
        columns = _frame_columns(cells, header)
        row = line_end + 1
        while columns:
            row_end = _line(data, row)
            raw = b"" if row_end is None else data[row:row_end].rstrip(b"\r")
            line = raw.decode("utf-8", "surrogatepass")
            index = line.lstrip(" \t").split(" ", 1)[0]
            if row_end is None or not (index.isascii() and index.isdigit()):
                break
            index_end = line.index(index) + len(index)
            for i, name, personal in columns:
                state[1] += 1
                cell = _frame_cell(line, index_end if i == 0 else cells[i - 1][1], cells[i][1])
                if cell is not None and not raw.isascii():  # the cell's bytes in the row's
                    cell = (_bytes_in(line, cell[0]), _bytes_in(line, cell[1]))
                span = None if cell is None else (row + cell[0], row + cell[1])
                if span is None or _inside(known, span):
                    continue
                value = _text(data, span)
                if personal is not None and personal.valid(value):
                    yield Found("dataframe-column", span[0], span[1], value, "pii")
                elif personal is None and _cell_credential(name, value):
                    yield Found("dataframe-column", span[0], span[1], value)
            if state[1] > MAX_CANDIDATES:
                overflow.append(row)
                return
            row = row_end + 1
        state[0] = row


_DATAFRAME_NAME = DATAFRAME.parse.groupindex[b"name"]


def _bytes_in(line: str, chars: int) -> int:
    """How many bytes of UTF-8 the first `chars` characters of `line` take."""
    return len(line[:chars].encode("utf-8", "surrogatepass"))


# redis-cli's reply to HGETALL: numbered lines, a field's name (odd) then its value (even),
# quoted: ` 5) "aadhaar_no"` then ` 6) "8214 9778 4666"`. A session's or a cache's hash.
REDIS_PAIR = TwoPass.compile(
    rb'(?m:^)[ \t]*(?P<n>\d{1,6})\)[ \t]+"(?P<name>[\w.:-]{1,64})"\r?\n'
    rb'[ \t]*\d{1,6}\)[ \t]+"(?P<value>(?:[^"\\\r\n]|\\.){1,512})"'
)
_REDIS_N, _REDIS_NAME, _REDIS_VALUE = (
    REDIS_PAIR.parse.groupindex[group] for group in (b"n", b"name", b"value")
)


def _redis_value_first(data: bytes, spans: Spans) -> bool:
    """Whether the match starts at an even line: a value, then the next field's name."""
    return int(data[slice(*spans[_REDIS_N])]) % 2 == 0


def _redis_named(data: bytes, spans: Spans) -> bool:
    """A field whose name is a credential's, a personal id's or a date of birth's."""
    name = data[slice(*spans[_REDIS_NAME])]
    if _redis_value_first(data, spans):
        return False  # read again from the next field's line (_redis_resume)
    return bool(
        credential_name_strength(name.decode())
        or found_in(_IDENTITY.column, name)
        or found_in(_BIRTH_DATE.column, name)
    )


def _redis_resume(data: bytes, spans: Spans, end: int) -> int | None:
    """After a value read as a name (an even number), on from its line's end: the next
    line is a field's name."""
    if _redis_value_first(data, spans):
        name_end: int = spans[_REDIS_NAME][1]
        return name_end
    return None


def _redis_pairs(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """Each field of a hash that redis-cli printed, judged under its name: a credential's,
    or a personal id's or a date of birth's, as a table's column is."""
    for spans in _matches(REDIS_PAIR, data, overflow, _redis_resume, _redis_named):
        span = spans[_REDIS_VALUE]
        if _inside(known, span):
            continue
        name, value = _text(data, spans[_REDIS_NAME]), _text(data, span)
        found = _named_found("redis-hash-field", name, value, span, quoted=True)
        if found is not None:
            yield found
        if _personal_value(name, value):
            yield Found("redis-hash-field", span[0], span[1], value, "pii")


def _personal_value(name: str, value: str) -> bool:
    """Whether a field's `name` names a personal id's or a date of birth's column and its
    `value` passes that column's check, as a table's cell is judged."""
    return any(
        found_in(personal.column, name.encode()) and personal.valid(value)
        for personal in (_IDENTITY, _BIRTH_DATE)
    )


# psql's expanded display (`\x`): each row a record, a header `-[ RECORD 1 ]` (drawn on to
# the value column's `+` where the names are wider than it), then a `name | value` line per
# column; at a line's start, or a JSON string's (a tool's result, read unescaped). With
# `\pset border 2` the header and each line have a frame (`+-[ RECORD 1 ]-+---+`,
# `| name | value |`); with `\pset linestyle unicode`, box-drawing lines and bars
# (`─[ RECORD 1 ]─┬──`, `name │ value`; framed: `┌─[ RECORD 1 ]─┬──┐`, `│ name │ value │`).
PSQL_RECORD = TwoPass.compile(
    rb'(?:(?m:^)|")[+\x{250C}\x{251C}]?[-\x{2500}]\[ RECORD \d{1,12} \]'
    rb"[-+\x{2500}\x{252C}\x{253C}\x{2510}\x{2524}]*\r?\n"
)
_BOX_BAR = "\N{BOX DRAWINGS LIGHT VERTICAL}".encode()
_BOX_LINE = "\N{BOX DRAWINGS LIGHT HORIZONTAL}".encode()


def _psql_records(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """Each field of a record psql prints in its expanded display, judged under its name
    as a table's column is: a credential's (`_cell_credential`), a personal id's or a date
    of birth's. A record's lines are read to the first that is no field's (`name | value`,
    a blank before the bar: a blank line, the next header, a frame's last line, `(2 rows)`);
    one with no name continues the value above (a wrapped one) and is not judged. Every
    line read counts as a candidate: past MAX_CANDIDATES, the rest is unverified."""
    reached, read = [0], 0
    for spans in _matches(PSQL_RECORD, data, overflow, _resumed(reached)):
        header = data[spans[0][0] : spans[0][1]]
        bar = b" " + (_BOX_BAR if _BOX_LINE in header else b"|")
        framed = not header.lstrip(b'"').startswith((b"-", _BOX_LINE))
        row = spans[0][1]
        while (end := _line(data, row)) is not None:
            if read >= MAX_CANDIDATES:
                overflow.append(row)
                return
            read += 1
            field = _record_line(data[row:end].rstrip(b"\r"), bar, framed)
            if field is None:
                break
            name_end, start, stop = (row + at for at in field)
            name = _text(data, (row, name_end)).strip(" |\N{BOX DRAWINGS LIGHT VERTICAL}")
            span = (start, stop)
            if name and start < stop and not _inside(known, span):
                yield from _record_field(name, span, _text(data, span))
            row = end + 1
        reached[0] = row


def _record_line(line: bytes, bar: bytes, framed: bool) -> tuple[int, int, int] | None:
    """A record's line's field: where its name ends and where its value starts and ends;
    None for a line that is no field's (no `bar` after a blank, or a frame's line missing
    where the record is framed)."""
    lead = len(bar) - 1 if framed else 0
    if framed and not line.startswith(bar[1:]):
        return None
    at = line.find(bar, lead)
    if at < 0:
        return None
    start = at + len(bar) + (line[at + len(bar) : at + len(bar) + 1] == b" ")
    value = line[: len(line) - len(bar)] if framed and line.endswith(bar) else line
    return at, start, max(start, len(value.rstrip(b" ")))


def _record_field(name: str, span: tuple[int, int], value: str) -> Iterator[Found]:
    """A psql record's field as a table's cell is judged: a credential under a credential's
    name, a personal id or a date of birth under theirs."""
    if credential_name_strength(name) == 2 and _cell_credential(name, value):
        yield Found("psql-record-field", span[0], span[1], value)
    if _personal_value(name, value):
        yield Found("psql-record-field", span[0], span[1], value, "pii")


def _personal_tables(pattern: TwoPass, personal: _Personal) -> Reader:
    """A reader of the columns `personal` names, `pattern` finding their tables: in a CSV's
    or a markdown table's header (personal ids: passport, SSN, CPF, ...; dates of birth:
    dob, Geburtsdatum, ...) or an SQL INSERT's columns, each row's value in one that
    `personal.valid` accepts: the rows of a customer export, which no label stands next to.

    An INSERT none of whose columns is one (the pattern finds `sin` in `business`) is
    passed over uncounted, as `_matches` passes over a name."""

    def named(data: bytes, spans: Spans) -> bool:
        start, end = spans[_COLUMNS]
        if start < 0:  # a header's cell, which the pattern matched whole
            return True
        columns = data[start:end].split(b",")
        return any(found_in(personal.column, _column(c).encode()) for c in columns)

    def read(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
        state = [0, 0]
        for spans in _matches(pattern, data, overflow, _resumed(state), named):
            rows = _sql_rows if spans[_COLUMNS][0] >= 0 else _delimited_rows
            yield from rows(data, spans, known, state, personal)
            if state[1] > MAX_CANDIDATES:
                overflow.append(state[0])
                return

    return read


def _delimited_rows(
    data: bytes, spans: Spans, known: Reported, state: list[int], personal: _Personal | None = None
) -> Iterator[Found]:
    """The rows of the CSV's or markdown table whose header holds the match `spans`: the
    lines after it (a markdown table's separator skipped) that have as many cells, up to a
    blank line or one that has not. `personal`: the columns of that personal data, not its
    credentials'."""
    table = _table(data, spans, personal)
    if table is None:  # no header: on from its line's end, the line's other cells unread
        line_end = data.find(b"\n", spans[_NAME][1], spans[_NAME][1] + MAX_ROW_BYTES)
        state[0] = line_end + 1 if line_end >= 0 else state[0]
        return
    delimiter, markdown, width, columns, row = table
    state[1] += HEADER_CANDIDATES
    while True:  # each value judged counts: MAX_CANDIDATES bounds the rows
        row_end = _line(data, row)
        if row_end is None:
            break
        line = data[row:row_end].rstrip(b"\r")
        cells = _cells(line, delimiter, markdown) if line.strip() else []
        if len(cells) != width:
            break
        if state[1] >= MAX_CANDIDATES:
            state[:] = [row, MAX_CANDIDATES + 1]
            return
        for i, name in columns:
            a, b = _unquoted(line, cells[i])
            span = (row + a, row + b)
            state[1] += 1
            if b <= a or _inside(known, span):
                continue
            value = _text(data, span)
            if personal is not None:
                if personal.cell(name, value):
                    yield Found(personal.rule_id, span[0], span[1], value, "pii")
            elif _cell_credential(name, value):
                yield Found("table-credential", span[0], span[1], value)
        row = row_end + 1
    state[0] = row


# Column names under which a plain word may be the credential (a weak password is one).
_WORD_COLUMNS = ("pass", "pwd", "secret")


def _cell_credential(name: str, value: str, quoted: bool = False) -> bool:
    """A table cell's value in a column named for a credential: judged as an assigned one,
    but a plain word (letters only) counts only under a password's or a secret's column: a
    `token` or `key` column of a word list, a tokenizer's vocabulary or a lemma table
    holds words, and every row of a table is judged."""
    if value.isalpha() and not any(w in name.lower() for w in _WORD_COLUMNS):
        return False
    return _named_value(name, value, quoted=quoted)


def _resumed(reached: list[int]) -> Callable[[bytes, Spans, int], int | None]:
    """A `resume` for `_matches`: on from `reached[0]`, where a reader last read to."""
    return lambda data, spans, end: reached[0] if reached[0] > end else None


_Table = tuple[bytes, bool, int, list[tuple[int, str]], int]


def _table(data: bytes, spans: Spans, personal: _Personal | None = None) -> _Table | None:
    """The table whose header holds the match `spans`: its delimiter, whether it is
    markdown, its width, its credentials' columns (index, name), or those `personal` names,
    and where its rows start; None if the line is no table's header."""
    start, name_end = spans[0][0], spans[_NAME][1]
    first = start + 1 if data[start : start + 1] in (b"\n", *_DELIMITER_BYTES) else start
    line_start = data.rfind(b"\n", max(0, first - MAX_ROW_BYTES), first) + 1
    line_end = data.find(b"\n", name_end, line_start + MAX_ROW_BYTES)
    if (line_start == 0 and first > MAX_ROW_BYTES) or line_end < 0:
        return None  # a line too long to be a header
    after = data[name_end:line_end].lstrip(b" \t\"'`")[:1]
    delimiter = after if after in _DELIMITER_BYTES else data[start:first]
    if delimiter not in _DELIMITER_BYTES:
        return None  # a name alone on its line
    if delimiter == b"|":
        line_start = _string_start(data, line_start, spans[_NAME][0])
        line_start = _after_label(data, line_start, spans[_NAME][0])
    header = data[line_start:line_end].rstrip(b"\r")
    markdown = header.lstrip(b" \t").startswith(b"|")
    row = line_end + 1
    rule = _line(data, row)
    # psql's header: cells between pipes, no pipe at either end, a rule of `-` and `+` below
    psql = (
        delimiter == b"|"
        and not markdown
        and rule is not None
        and found_in(_PSQL_RULE, data[row:rule])
    )
    # a flat file's header, its cells split by pipes with no blank beside them
    # (`SIN|LAST|FIRST`), where a shell's pipeline has blanks (`cat x | grep ssn`)
    flat = delimiter == b"|" and not markdown and b" |" not in header and b"| " not in header
    if (markdown != (delimiter == b"|") and not psql and not flat) or found_in(_IMPORT, header):
        return None
    cells = [_unquoted(header, cell) for cell in _cells(header, delimiter, markdown)]
    if len(cells) < 2 or not all(_header_cell(header[a:b]) for a, b in cells):
        return None
    names = [header[a:b].decode() for a, b in cells]
    if personal is not None:
        columns = [(i, n) for i, n in enumerate(names) if found_in(personal.column, n.encode())]
    else:
        columns = [(i, n) for i, n in enumerate(names) if credential_name_strength(n) == 2]
    if not columns:
        return None
    if markdown or psql:  # |---|:---:| (+---+---+ from mysql, ---+--- from psql) follows
        if rule is None or not _is_separator(data[row:rule], len(cells)):
            return None
        row = rule + 1
    elif line_start and _row_above(data, line_start, delimiter, len(cells)):
        return None  # a row of a table above, not a header
    return delimiter, markdown, len(cells), columns, row


def _after_label(data: bytes, line_start: int, name_start: int) -> int:
    """Where a markdown table starts whose header a label or a chat message's prefix opens
    (`@tanaka · 09:19: | 氏名 | 生年月日 |`, `Quick question: | Name | Password |`): at
    its first pipe, if what comes before it ends in a colon; else the line's start."""
    pipe = data.find(b"|", line_start, name_start)
    if pipe <= line_start or not data[line_start:pipe].rstrip(b" \t").endswith(b":"):
        return line_start
    return pipe


def _string_start(data: bytes, line_start: int, name_start: int) -> int:
    """Where a table whose line starts a JSON string starts: a tool's result, read with its
    escapes (`{"role": "tool", ..., "content": " id | name | ssn` then its rows), just
    after the string's quote, the last before the header's name (`name_start`); else the
    line's start."""
    quote = data.rfind(b'"', line_start, name_start)
    if quote < 0 or not data[line_start:quote].rstrip(b" \t").endswith(b":"):
        return line_start
    return quote + 1


# The rules under an SQL client's header: psql's `------+-----` (a `+` between each two
# cells), mysql's `+-----+-----+` (and at both ends).
_PSQL_RULE = re2.compile(rb"^[ \t]*-+(?:\+-+)*[ \t]*\r?$")
_MYSQL_RULE = re2.compile(rb"^[ \t]*\+(?:-+\+)+[ \t]*\r?$")


# Python's imports list names with commas: `from pydantic import Field, SecretStr` then
# another import is no table with a SecretStr column (`from city,passport` may head one).
_IMPORT = re2.compile(rb"^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]")


def _row_above(data: bytes, line_start: int, delimiter: bytes, width: int) -> bool:
    """Whether the line above the one at `line_start` has `width` cells: then that one is a
    table's row (`X-Api-Key,...` under `name,value`), not its header."""
    above = data.rfind(b"\n", max(0, line_start - 1 - MAX_ROW_BYTES), line_start - 1) + 1
    if above == 0 and line_start - 1 > MAX_ROW_BYTES:
        return False
    line = data[above : line_start - 1].rstrip(b"\r")
    return bool(line.strip()) and len(_cells(line, delimiter, False)) == width


_DELIMITER_BYTES = tuple(bytes([b]) for b in _DELIMITERS)


def _line(data: bytes, start: int) -> int | None:
    """Where the line that starts at `start` ends (its line end, or the text's), or None if
    there is none or it is longer than MAX_ROW_BYTES."""
    size = len(data)
    if start >= size:
        return None
    end = data.find(b"\n", start, start + MAX_ROW_BYTES + 1)
    if end < 0:
        return size if size - start <= MAX_ROW_BYTES else None
    return end


def _cells(line: bytes, delimiter: bytes, markdown: bool) -> list[tuple[int, int]]:
    """The spans of a table row's cells: split at `delimiter`, outside double quotes (CSV);
    for a markdown row, between its outer pipes. Linear in the line; none if a quote does
    not close."""
    start, end = 0, len(line)
    if markdown:
        start = line.find(b"|") + 1
        stripped = line.rstrip()
        end = len(stripped) - 1 if stripped.endswith(b"|") and len(stripped) > start else end
    cells: list[tuple[int, int]] = []
    i = start
    while True:
        head = i + len(line[i:end]) - len(line[i:end].lstrip(b" \t"))
        after = i
        if not markdown and line[head : head + 1] == b'"':
            close = line.find(b'"', head + 1, end)
            while close >= 0 and line[close + 1 : close + 2] == b'"':  # "" inside
                close = line.find(b'"', close + 2, end)
            if close < 0:
                return []
            after = close + 1
        cut = line.find(delimiter, after, end)
        if cut < 0:
            cells.append((i, end))
            return cells
        cells.append((i, cut))
        i = cut + 1


def _unquoted(line: bytes, cell: tuple[int, int]) -> tuple[int, int]:
    """A span of `line` (a table's cell, a command's argument) without its blanks, and without
    the quotes or backticks around it."""
    a, b = cell
    while a < b and line[a] in b" \t":
        a += 1
    while b > a and line[b - 1] in b" \t\r":
        b -= 1
    if b - a >= 2 and line[a] == line[b - 1] and line[a] in b"\"'`":
        a, b = a + 1, b - 1
    return a, b


def _is_separator(line: bytes, cells: int) -> bool:
    """A markdown table's separator row, |---|:---:|, for as many cells; or an SQL client's
    rule with as many: mysql's +---+---+, psql's ---+---."""
    if found_in(_MYSQL_RULE, line):
        return line.count(b"+") == cells + 1
    if found_in(_PSQL_RULE, line):
        return line.count(b"+") == cells - 1
    parts = _cells(line, b"|", True)
    return len(parts) == cells and all(
        line[a:b].strip(b" \t:") and not line[a:b].strip(b" \t:-") for a, b in parts
    )


def _sql_rows(
    data: bytes, spans: Spans, known: Reported, state: list[int], personal: _Personal | None = None
) -> Iterator[Found]:
    """`INSERT INTO users (name, password) VALUES ('bob', '...'), (...)`: each row's quoted
    value in a column named for a credential, or with `personal` each row's value, quoted or
    not (an SSN may be a bare number), in a column of that personal data; and a settings
    table's value under its row's name (`_setting_pair`)."""
    start, end = spans[_COLUMNS]
    names = [_column(column) for column in data[start:end].split(b",")]
    pair = None
    if personal is not None:
        columns = [(i, n) for i, n in enumerate(names) if found_in(personal.column, n.encode())]
    else:
        columns = [(i, n) for i, n in enumerate(names) if credential_name_strength(n) == 2]
        pair = _setting_pair(names)
    judged = len(columns) + (pair is not None)
    row = spans[0][1]  # just past the first row's (
    read = False
    while True:  # each value judged counts: MAX_CANDIDATES bounds the rows
        items, row = _sql_row(data, row)
        if items is None or len(items) != len(names):
            if not read:  # a column list with no row of its width costs its reading
                state[1] += 1 + len(names) // 16
            break
        read = True
        if state[1] >= MAX_CANDIDATES:
            state[:] = [row, MAX_CANDIDATES + 1]
            return
        state[1] += judged
        yield from _row_values(data, items, columns, known, personal)
        if pair is not None:
            found = _setting_in_row(data, items, pair, known)
            if found is not None:
                yield found
        following = _next_row(data, row)
        if following is None:
            break
        row = following
    state[0] = row


def _row_values(
    data: bytes,
    items: list[tuple[int, int, bool]],
    columns: list[tuple[int, str]],
    known: Reported,
    personal: _Personal | None,
) -> Iterator[Found]:
    """An SQL row's findings in `columns` (`_sql_rows`)."""
    for i, name in columns:
        a, b, quoted = items[i]
        if not quoted and personal is not None and data[b - 1] in _LITERAL_ENDS:
            a, b = _typed_literal(data, a, b)  # DATE '1987-03-14', TO_DATE(...)
        if (not quoted and personal is None) or b <= a or _inside(known, (a, b)):
            continue
        value = _text(data, (a, b))
        if personal is not None:
            if personal.cell(name, value):
                yield Found(personal.rule_id, a, b, value, "pii")
        elif _cell_credential(name, value, quoted=True):
            yield Found("table-credential", a, b, value)


# The columns of a settings table in SQL: the setting's name, and its value.
_SETTING_NAME_COLUMNS = frozenset(
    {"name", "key", "setting", "setting_name", "option_name", "config_key", "param", "property"}
)
_SETTING_VALUE_COLUMNS = frozenset({"value", "setting_value", "option_value", "config_value"})


def _setting_pair(names: list[str]) -> tuple[int, int] | None:
    """The indices of a settings table's name column and value column, if it has both."""
    lower = [n.lower() for n in names]
    name = next((i for i, n in enumerate(lower) if n in _SETTING_NAME_COLUMNS), None)
    value = next((i for i, n in enumerate(lower) if n in _SETTING_VALUE_COLUMNS), None)
    return None if name is None or value is None else (name, value)


def _setting_in_row(
    data: bytes, items: list[tuple[int, int, bool]], pair: tuple[int, int], known: Reported
) -> Found | None:
    """A settings row's quoted value, judged under the row's quoted name."""
    (na, nb, name_quoted), (a, b, quoted) = items[pair[0]], items[pair[1]]
    if not (name_quoted and quoted) or b <= a or _inside(known, (a, b)):
        return None
    value, name = _text(data, (a, b)), _text(data, (na, nb))
    if _cell_credential(name, value, quoted=True) or _unnamed_password(name, value):
        return Found("table-credential", a, b, value)
    return None


def _column(name: bytes) -> str:
    return name.strip(b" \t\"'`[]").decode("utf-8", "replace")


# One SQL row's values: the longest read of one, unquoted (NOW(), 42, NULL), and of a row.
_MAX_BARE_ITEM = 64
_SQL_BLANKS = b" \t\r\n"


def _sql_row(data: bytes, pos: int) -> tuple[list[tuple[int, int, bool]] | None, int]:
    """The values of the SQL row whose ( is just before `pos`: (start, end, quoted) each,
    and where the reading stopped (past the row's ), or where it gave up). Strings in
    single or double quotes, a doubled quote inside, a cast after one (::date) passed over;
    unquoted values up to _MAX_BARE_ITEM bytes, a call's brackets in them (`_sql_rows`
    reads a typed literal's string out of one). Reads at most MAX_ROW_BYTES."""
    limit = min(len(data), pos + MAX_ROW_BYTES)
    items: list[tuple[int, int, bool]] = []
    i = pos
    while True:
        i = _skip_blanks(data, i, limit)
        if data[i : i + 2] in _PREFIXED_STRINGS:
            i += 1  # SQL Server's N'...', PostgreSQL's E'...': a string all the same
        quote = data[i : i + 1]
        if quote in (b"'", b'"'):
            close = data.find(quote, i + 1, limit)
            while close >= 0 and data[close + 1 : close + 2] == quote:
                close = data.find(quote, close + 2, limit)
            if close < 0:
                return None, limit
            items.append((i + 1, close, True))
            i = close + 1
            if data.startswith(b"::", i):  # PostgreSQL's cast: '1987-03-14'::date
                i = _bare_end(data, i, min(limit, i + _MAX_BARE_ITEM))
        else:  # _bare_end's loop, written out: a call per value cost a row of NULLs 15%
            end, depth = i, 0
            stop = min(limit, i + _MAX_BARE_ITEM)
            while end < stop and (depth or data[end] not in b",)"):
                depth += {40: 1, 41: -1}.get(data[end], 0)  # ( and )
                end += 1
            if end == stop:
                return None, end
            items.append((i, end, False))
            i = end
        i = _skip_blanks(data, i, limit)
        sep = data[i : i + 1]
        if sep == b")":
            return items, i + 1
        if sep != b",":
            return None, i
        i += 1


# SQL strings with a prefix that are strings all the same: N'...' (SQL Server), E'...'.
_PREFIXED_STRINGS = frozenset({b"N'", b"n'", b"E'", b"e'"})


def _bare_end(data: bytes, i: int, stop: int) -> int:
    """Where a cast's type at `i` (`::date`, `::varchar(10)`) ends: at the `,` or `)` after
    it outside brackets, or at `stop` if none comes before; as an unquoted value ends."""
    end, depth = i, 0
    while end < stop and (depth or data[end] not in b",)"):
        depth += {40: 1, 41: -1}.get(data[end], 0)  # ( and )
        end += 1
    return end


# A date written as a typed literal, or as a call that makes one of a string: DATE '...',
# TIMESTAMP '...', TO_DATE('...', 'DD/MM/YYYY'), STR_TO_DATE(...), CAST('...' AS DATE). The
# group is the string, the first argument's: a format string after it is no value.
_TYPED_LITERAL = re2.compile(
    rb"(?i:(?:date|timestamp)[ \t]*|(?:to_date|to_timestamp|str_to_date|date|cast)[ \t]*\([ \t]*)"
    rb"'([^'\n]{1,40})'"
)


# How a typed literal ends: the caller asks before the search, which NULL, 42 and NOW()... skip.
_LITERAL_ENDS = b"')"


def _typed_literal(data: bytes, a: int, b: int) -> tuple[int, int]:
    """The span of the string inside the unquoted value data[a:b] if it is a typed literal
    (_TYPED_LITERAL), else the value's own: the date in `DATE '1987-03-14'`."""
    spans = match_spans(_TYPED_LITERAL, data, a, b)
    return (a, b) if spans is None else spans[1]


def _skip_blanks(data: bytes, i: int, limit: int) -> int:
    limit = min(limit, len(data))
    while i < limit and data[i] in _SQL_BLANKS:
        i += 1
    return i


def _next_row(data: bytes, pos: int) -> int | None:
    """Past the ( of the row after the one that ended at `pos` (`, (`), or None."""
    i = _skip_blanks(data, pos, pos + 64)
    if data[i : i + 1] != b",":
        return None
    i = _skip_blanks(data, i + 1, i + 65)
    return i + 1 if data[i : i + 1] == b"(" else None


_AUTHORIZATION = ("authorization", "proxy-authorization")
Reader = Callable[[bytes, list[int], Reported], Iterator[Found]]


# NACHA's ACH file, the fixed-width file US banks exchange for payroll, direct deposits and
# direct debits: 94-character records, each named by its first character. A batch header
# (5) names, in columns 51-53, its Standard Entry Class: PPD, WEB, TEL and the like move
# money to or from a consumer's account, CCD and CTX a company's. Each entry detail record
# (6) then holds the receiving bank's routing number (columns 4-12, the ninth digit the ABA
# check), the receiver's account number (13-29), the amount, an id (40-54) and the
# receiver's name (55-76): in a consumer's entry, a person's bank account and name.
ACH_RECORD = TwoPass.compile(
    rb"(?m:^)[ \t]*(?:5\d{3}[^\r\n]{46}(?P<class>[A-Z]{3})[^\r\n]{41}"
    rb"|6\d{2}(?P<routing>\d{9})(?P<account>[^\r\n]{17})\d{10}[^\r\n]{15}"
    rb"(?P<name>[^\r\n]{22})[^\r\n]{2}[01]\d{15}|(?P<control>8\d{3})[^\r\n]{90})[ \t\r]*(?m:$)"
)
_ACH_CLASS, _ACH_ROUTING, _ACH_ACCOUNT, _ACH_NAME, _ACH_CONTROL = (
    ACH_RECORD.parse.groupindex[group]
    for group in (b"class", b"routing", b"account", b"name", b"control")
)
# The entry classes whose receivers are companies (NACHA Operating Rules: corporate credits
# and debits, with or without addenda, and their acknowledgements).
_COMPANY_CLASSES = frozenset({b"CCD", b"CTX", b"ACK", b"ATX"})
# An account number as a bank writes it (digits, maybe a hyphen or a letter), with at least
# four digits; a masked one (****6357, XXXX6357) is none.
_ACH_ACCOUNT_NUMBER = re2.compile(rb"^(?:[0-9A-WYZa-wyz-]*[0-9]){4}[0-9A-WYZa-wyz-]*$")
# A receiver's name: two words of letters or more ("WHITFIELD, MARCUS", "O'NEIL J"), a
# joint account's too ("JOHN & JANE DOE", "DOE/JANE").
_ACH_NAME_WORDS = re2.compile(rb"^[A-Za-z][A-Za-z'.-]*(?:(?:,? | ?[&/] ?)[A-Za-z][A-Za-z'.-]*)+$")
# ... and no test's or sample file's ("TEST RECEIVER ONE", "Receiver Account Name")
_NOT_A_RECEIVER = frozenset(
    {"test", "sample", "example", "dummy", "fake", "redacted", "receiver", "receiving"}
)


def _ach_entries(data: bytes, overflow: list[int], known: Reported) -> Iterator[Found]:
    """Each consumer entry of an ACH file: the receiver's account number, where the bank's
    routing number passes the ABA check and a person's name stands with it. Entries of a
    company's batch (CCD, CTX) are passed over, as are masked accounts and names and test
    receivers. An entry pasted without its batch is judged by its name alone."""
    batch_class: bytes | None = None
    for spans in _matches(ACH_RECORD, data, overflow):
        if spans[_ACH_CLASS][0] >= 0:
            batch_class = data[slice(*spans[_ACH_CLASS])]
            continue
        if spans[_ACH_CONTROL][0] >= 0:  # the batch's control record: its end
            batch_class = None
            continue
        start, end = spans[_ACH_ACCOUNT]
        account = data[start:end].strip(b" ")
        start += data[start:end].index(account) if account else 0
        name = data[slice(*spans[_ACH_NAME])].strip(b" ")
        if (
            batch_class in _COMPANY_CLASSES
            or not pii.aba_routing(_text(data, spans[_ACH_ROUTING]))
            or _ACH_ACCOUNT_NUMBER.fullmatch(account) is None
            or pii.nobodys_number(account.replace(b"-", b"").decode())
            or _ACH_NAME_WORDS.fullmatch(name) is None
            or not _NOT_A_RECEIVER.isdisjoint(name.decode().lower().replace(",", " ").split())
            or _inside(known, (start, end))
        ):
            continue
        yield Found(
            "ach-entry-account",
            start,
            start + len(account),
            _text(data, (start, start + len(account))),
            "pii",
        )


# Runs a reader's work for each reader, in turn or at once, and answers in their order.
Each = Callable[
    [Callable[[tuple[str, Reader]], list[Found]], Sequence[tuple[str, Reader]]], list[list[Found]]
]
# Each reader with the pattern it searches: a text none of the patterns match skips it.
READERS: tuple[tuple[str, TwoPass, Reader], ...] = (
    ("assigned-credential", ASSIGNMENT, _assignments),
    ("assigned-credential", PROPERTY_CALL, _property_calls),
    ("assigned-credential", COMPARISON, _quoted_value(COMPARISON)),
    ("assigned-credential", NAMED_PAIR, _name_and_value(NAMED_PAIR)),
    ("assigned-credential", POSTMAN_APIKEY, _quoted_value(POSTMAN_APIKEY)),
    ("assigned-credential", TERRAFORM_OUTPUT, _terraform_outputs),
    ("env-pair-key", ENV_PAIR, _env_pairs),
    ("assigned-credential", SET_COMMAND, _name_and_value(SET_COMMAND, expands=True)),
    ("assigned-credential", TUPLE_PAIR, _quoted_value(TUPLE_PAIR)),
    ("assigned-credential", LIST_PAIR, _quoted_value(LIST_PAIR, kept=_list_pair_kept)),
    ("assigned-credential", KEYWORD_PAIR, _quoted_value(KEYWORD_PAIR)),
    ("assigned-credential", LISP_SET, _quoted_value(LISP_SET)),
    ("assigned-credential", SETTER_CALL, _setter_calls),
    ("assigned-credential", DSL_CALL, _quoted_value(DSL_CALL)),
    ("xml-element-credential", NAMED_ELEMENT, _element_text(NAMED_ELEMENT)),
    ("cli-option-credential", CLI_OPTION, _cli_options),
    ("byte-array-key", BYTE_ARRAY, _byte_arrays),
    ("xml-element-credential", XML_ELEMENT, _element_text(XML_ELEMENT)),
    ("xml-element-credential", PLIST_ENTRY, _element_text(PLIST_ENTRY)),
    ("curl-user-credential", CURL_USER, _curl_users),
    ("secret-command-value", SECRET_COMMAND, _secret_commands),
    ("printed-secret", PRINTED_SECRET, _printed_secrets),
    ("header-credential", HEADER, _headers),
    ("table-credential", TABLE, _tables),
    ("table-credential", SETTING_TABLE, _setting_rows),
    ("table-credential", FIXED_TABLE, _fixed_tables),
    ("table-credential", CREDENTIAL_SECTION, _credential_sections),
    ("table-identity-number", ID_TABLE, _personal_tables(ID_TABLE, _IDENTITY)),
    ("table-date-of-birth", DOB_TABLE, _personal_tables(DOB_TABLE, _BIRTH_DATE)),
    ("table-street-address", ADDRESS_TABLE, _personal_tables(ADDRESS_TABLE, _ADDRESS)),
    ("redis-hash-field", REDIS_PAIR, _redis_pairs),
    ("psql-record-field", PSQL_RECORD, _psql_records),
    ("dataframe-column", DATAFRAME, _dataframes),
    ("ach-entry-account", ACH_RECORD, _ach_entries),
    # after the tables' readers, whose rows it would read too
    (
        "assigned-credential",
        SPACED_SETTING,
        _name_and_value(SPACED_SETTING, kept=_spaced_setting_kept),
    ),
)


def _env_pair_named(data: bytes, spans: Spans) -> bool:
    """`_matches`' test for a {name, value} record: a name of 3-64 characters that is no
    credential's (NAMED_PAIR's) nor a digest's, an id's or a setting's, and a value of
    16-128 (a key's length; a longer one is a document, and the base64 checks read it at a
    cost). The others are passed over uncounted: a long manifest spends no candidates."""
    (start, end), (value_start, value_end) = spans[1], spans[2]
    if not (3 <= end - start <= 64 and 16 <= value_end - value_start <= 128):
        return False
    name = _text(data, (start, end))
    return credential_name_strength(name) == 0 and not names_no_key(name)


# The records' reader alone, which the scanner runs where a {name, value} record is all the
# prefilter found (scanner.RECORDS).
RECORDS_READER: tuple[str, Reader] = ("env-pair-key", _env_pairs)

# The ids of the readers' findings, which `privacy.disabled_rules` may name.
RULE_IDS = tuple(dict.fromkeys(rule_id for rule_id, _, _ in READERS))


READER_SET_MAX_MEM = 32 << 20
# The readers the set asks about. Not the assignment reader: its pattern matches most texts
# that reach the readers (85% of the bench's mixed prompts), and in the set it more than
# doubles the set's cost, more than its own search costs.
_SET_READERS = [i for i, (_, pattern, _) in enumerate(READERS) if pattern is not ASSIGNMENT]
_UNSET_READERS = frozenset(range(len(READERS))).difference(_SET_READERS)


# Its DFA's cache outgrew RE2's default 8 MB with the positional tables' and the sections'
# readers: the bench's 515 texts took 150 ms, not 72, refilling it. 32 MB, as the
# prefilter's (scanner.PREFILTER_MAX_MEM); it grows only as a text needs.
_READER_SET = PatternSet(
    (READERS[i][1].find.pattern for i in _SET_READERS), max_mem=READER_SET_MAX_MEM
)
