"""Every example in examples/python/sdk runs against the real gateway and does its task."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Gateway

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "python" / "sdk"


def run(example: str, gateway: Gateway, *args: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example), *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=dict(os.environ, TICKGATE_URL=gateway.url, **env),
    )
    assert done.returncode == 0, f"{example} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize(
    ("example", "expect"),
    [
        ("trades.py", " @ "),
        ("book.py", " spread "),
        ("sync_script.py", "top bids"),
        ("history.py", "trades in the last hour"),
    ],
)
async def test_plain_examples(gateway: Gateway, example: str, expect: str) -> None:
    out = await asyncio.to_thread(run, example, gateway, "3")
    assert expect in out


async def test_keyed_examples(gateway_factory: Any) -> None:
    gateway: Gateway = gateway_factory(start=False)
    old = gateway.create_key("hmac", "market:read")
    new = gateway.create_key("hmac", "market:read")
    ed = gateway.create_key("ed25519", "market:read")
    gateway.start()
    hmac_env = {"TICKGATE_KEY_ID": old.id, "TICKGATE_HMAC_SECRET": old.secret or ""}
    out = await asyncio.to_thread(run, "signed.py", gateway, "2", **hmac_env)
    assert f"stream authenticated as {old.id}" in out and "REST ticker:" in out
    pem = gateway.data_dir.parent / "client.pem"
    pem.write_bytes(ed.pem or b"")
    out = await asyncio.to_thread(
        run, "signed.py", gateway, "1", TICKGATE_KEY_ID=ed.id, TICKGATE_ED25519_KEY=str(pem)
    )
    assert f"stream authenticated as {ed.id}" in out
    out = await asyncio.to_thread(
        run,
        "rotate_key.py",
        gateway,
        NEW_KEY_ID=new.id,
        NEW_HMAC_SECRET=new.secret or "",
        **hmac_env,
    )
    assert f"now authenticated as {new.id}" in out and "started over: []" in out
    out = await asyncio.to_thread(run, "ws_token.py", gateway, "2", **hmac_env)
    assert f"(session key {old.id})" in out
