"""Synthetic secrets in real formats, generated from a seed (never real credentials), and the
text the property tests plant them in."""

from __future__ import annotations

import base64
import hashlib
import random
import string

from hypothesis import strategies as st

ALNUM = string.ascii_letters + string.digits
B32 = string.ascii_uppercase + "234567"


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def aws_key_id(rng: random.Random) -> str:
    return "AKIA" + _pick(rng, B32, 16)


def base64_key(rng: random.Random, n: int) -> str:
    return _pick(rng, ALNUM + "+/", n)


def aws_secret(rng: random.Random) -> str:
    return _pick(rng, ALNUM + "/+", 40)


def github_token(rng: random.Random) -> str:
    return "ghp_" + _pick(rng, ALNUM, 36)


def stripe_key(rng: random.Random) -> str:
    return "sk_live_" + _pick(rng, ALNUM, 24)


def slack_token(rng: random.Random) -> str:
    return f"xoxb-{rng.randrange(10**11, 10**12)}-{rng.randrange(10**11, 10**12)}-" + _pick(
        rng, ALNUM, 24
    )


def anthropic_key(rng: random.Random) -> str:
    return "sk-ant-api03-" + _pick(rng, ALNUM + "_-", 93) + "AA"


def openai_key(rng: random.Random) -> str:
    return "sk-proj-" + _pick(rng, ALNUM + "_-", 40) + "T3BlbkFJ" + _pick(rng, ALNUM, 40)


def huggingface_token(rng: random.Random) -> str:
    return "hf_" + _pick(rng, string.ascii_letters, 34)


def gitlab_token(rng: random.Random) -> str:
    return "glpat-" + _pick(rng, ALNUM, 20)


def npm_token(rng: random.Random) -> str:
    return "npm_" + _pick(rng, ALNUM, 36)


def sendgrid_key(rng: random.Random) -> str:
    return "SG." + _pick(rng, ALNUM, 22) + "." + _pick(rng, ALNUM, 43)


def gcp_api_key(rng: random.Random) -> str:
    return "AIza" + _pick(rng, ALNUM + "_-", 35)


def jwt(rng: random.Random) -> str:
    def part(payload: str) -> str:
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    header = part('{"alg":"HS256","typ":"JWT"}')
    sub, name, iat = (
        rng.randrange(10**6),
        _pick(rng, string.ascii_lowercase, 8),
        rng.randrange(10**9),
    )
    body = part(f'{{"sub":"{sub}","name":"{name}","iat":{iat}}}')
    return f"{header}.{body}." + _pick(rng, ALNUM + "_-", 43)


def private_key(rng: random.Random) -> str:
    body = "\n".join(_pick(rng, ALNUM + "+/", 64) for _ in range(6))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"


def postgres_url(rng: random.Random) -> str:
    password = _pick(rng, ALNUM, 6) + rng.choice("!#%^*") + _pick(rng, ALNUM, 6)
    user = "svc_" + _pick(rng, string.ascii_lowercase, 5)
    return f"postgres://{user}:{password}@db7.prod.example.net:5432/app"


def base58check(payload: bytes) -> str:
    """Base58Check, as Bitcoin writes keys: the payload, then 4 bytes of its double SHA-256."""
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number, out = int.from_bytes(raw, "big"), ""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    while number:
        number, digit = divmod(number, 58)
        out = alphabet[digit] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def extended_private_key(rng: random.Random) -> str:
    """A BIP32 xprv: its version bytes, 74 random bytes, its checksum."""
    return base58check(b"\x04\x88\xad\xe4" + bytes(rng.randrange(256) for _ in range(74)))


STANDALONE = [
    aws_key_id,
    github_token,
    stripe_key,
    slack_token,
    anthropic_key,
    openai_key,
    huggingface_token,
    gitlab_token,
    npm_token,
    sendgrid_key,
    gcp_api_key,
    jwt,
    private_key,
    postgres_url,
    extended_private_key,
]


# What a planted value sits between: arbitrary text, all of Unicode (lone surrogates
# included), or text biased towards code-ish prose.
AROUND = st.text(max_size=400) | st.text(
    alphabet=st.sampled_from(list("abcdefXYZ0123456789 =:'\"\n\t_-./@+#{}()[]<>`")), max_size=400
)
