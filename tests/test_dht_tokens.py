"""Announce tokens (BEP 5): good for five to ten minutes, for one IP only."""

from __future__ import annotations

import random

from swarm.dht.tokens import ROTATE_EVERY, TOKEN_SIZE, Tokens


def test_a_token_issued_just_after_a_rotation_is_good_for_ten_minutes() -> None:
    tokens = Tokens(random.Random(1), 1000.0)
    token = tokens.token_for("10.0.0.1", 1000.0)
    assert len(token) == TOKEN_SIZE
    assert tokens.valid(token, "10.0.0.1", 1000.0 + ROTATE_EVERY)  # the secret before
    assert tokens.valid(token, "10.0.0.1", 1000.0 + 2 * ROTATE_EVERY - 0.1)
    assert not tokens.valid(token, "10.0.0.1", 1000.0 + 2 * ROTATE_EVERY)


def test_a_token_issued_just_before_a_rotation_is_good_for_five_minutes() -> None:
    tokens = Tokens(random.Random(2), 0.0)
    token = tokens.token_for("10.0.0.1", ROTATE_EVERY - 1)
    assert tokens.valid(token, "10.0.0.1", 2 * ROTATE_EVERY - 1)
    assert not tokens.valid(token, "10.0.0.1", 2 * ROTATE_EVERY)


def test_a_token_is_good_for_its_ip_only() -> None:
    tokens = Tokens(random.Random(3), 0.0)
    token = tokens.token_for("10.0.0.1", 0.0)
    assert not tokens.valid(token, "10.0.0.2", 0.0)
    assert not tokens.valid(token[:-1], "10.0.0.1", 0.0)
    assert not tokens.valid(b"", "10.0.0.1", 0.0)
    assert tokens.token_for("10.0.0.1", 1.0) == token  # stable within a period
    assert tokens.token_for("10.0.0.2", 1.0) != token


def test_after_a_long_silence_old_tokens_are_all_gone() -> None:
    tokens = Tokens(random.Random(4), 0.0)
    token = tokens.token_for("10.0.0.1", 0.0)
    fresh_at = 10 * ROTATE_EVERY + 7
    assert not tokens.valid(token, "10.0.0.1", fresh_at)
    fresh = tokens.token_for("10.0.0.1", fresh_at)
    assert tokens.valid(fresh, "10.0.0.1", fresh_at + 2 * ROTATE_EVERY - 1)
    assert not tokens.valid(fresh, "10.0.0.1", fresh_at + 2 * ROTATE_EVERY)


def test_secrets_come_from_the_random_source_given() -> None:
    a, b = Tokens(random.Random(5), 0.0), Tokens(random.Random(5), 0.0)
    assert a.token_for("1.2.3.4", 0.0) == b.token_for("1.2.3.4", 0.0)
    assert Tokens(random.Random(6), 0.0).token_for("1.2.3.4", 0.0) != a.token_for("1.2.3.4", 0.0)
