"""`runs --where`: the parser (input -> comparisons or exact error) and what matches."""

from __future__ import annotations

import pytest

from hostctl.errors import HostctlError
from hostctl.jobs.where import Comparison, lookup, matches, parse_where
from tests.rigs.refusals import refusal
from tests.unit.jobs.runs_data import record, summary

C = Comparison


@pytest.mark.parametrize(("expr", "parsed"), [
    ("val_auc>0.9", (C("val_auc", ">", 0.9),)),
    ("val_auc > 0.9", (C("val_auc", ">", 0.9),)),
    ("  loss<=1e-3  ", (C("loss", "<=", 0.001),)),
    ("exit==0", (C("exit", "=", 0.0),)),
    ("exit=0", (C("exit", "=", 0.0),)),
    ("state!=failed", (C("state", "!=", "failed"),)),
    ("x>=-2", (C("x", ">=", -2.0),)),
    ("x<.5", (C("x", "<", 0.5),)),
    ("val_auc>0.9 and LR=0.1", (C("val_auc", ">", 0.9), C("LR", "=", 0.1))),
    ("a=1 AND b=2 And c=3", (C("a", "=", 1.0), C("b", "=", 2.0), C("c", "=", 3.0))),
    ("note='first try'", (C("note", "=", "first try"),)),
    ('note="it\'s and more"', (C("note", "=", "it's and more"),)),
    ("LR='0.1'", (C("LR", "=", "0.1"),)),  # quoted: a string
    ("x=inf", (C("x", "=", "inf"),)),  # not a finite number: a word
    ("git_branch=feature/x-1", (C("git_branch", "=", "feature/x-1"),)),
    ("params.LR=0.1", (C("params.LR", "=", 0.1),)),
    ("val_auc.max>0.5", (C("val_auc.max", ">", 0.5),)),
    ("eval/acc:top1>0.5", (C("eval/acc:top1", ">", 0.5),)),
    ("a=", None),
])
def test_parse(expr: str, parsed: tuple[Comparison, ...] | None) -> None:
    if parsed is None:
        with pytest.raises(HostctlError):
            parse_where(expr)
        return
    assert parse_where(expr) == parsed


HOW_OP = "write NAME OP VALUE with OP one of = != < <= > >="


@pytest.mark.parametrize(("expr", "message"), [
    ("val_auc>>0.9", f"--where 'val_auc>>0.9': '>>0.9' is not a comparison; {HOW_OP}"),
    ("val_auc=<0.9", f"--where 'val_auc=<0.9': '=<0.9' is not a comparison; {HOW_OP}"),
    ("val_auc 0.9", f"--where 'val_auc 0.9': 'val_auc 0.9' is not a comparison; {HOW_OP}"),
    ("val_auc", f"--where 'val_auc': 'val_auc' is not a comparison; {HOW_OP}"),
    ("a=1 and b~2", f"--where 'a=1 and b~2': 'b~2' is not a comparison; {HOW_OP}"),
    ("val_auc>", "--where 'val_auc>': 'val_auc>' has no value; write NAME OP VALUE with VALUE "
     "a number, a word or a quoted string"),
    ("a=1 b=2", "--where 'a=1 b=2': 'b=2' follows a comparison; join comparisons with `and` "
     "(a value with spaces goes in quotes)"),
    ("note=first try", "--where 'note=first try': 'try' follows a comparison; join "
     "comparisons with `and` (a value with spaces goes in quotes)"),
    ("a=1 and", "--where 'a=1 and': 'a=1 and' ends with `and`; add a comparison after it or "
     "remove the `and`"),
    ("state>running", "--where 'state>running': 'state>running' orders words; > needs a "
     "number (compare words with = or !=)"),
    ("LR<='0.1'", "--where \"LR<='0.1'\": \"LR<='0.1'\" orders words; <= needs a number "
     "(compare words with = or !=)"),
    ("note='x", "--where \"note='x\": \"'x\" has no closing '"),
    ("1a=2", "--where '1a=2': '1a=2' does not start with a name; write NAME OP VALUE with "
     "NAME a field, metric or parameter (letters, digits, _ . : / -)"),
    ("=2", "--where '=2': '=2' does not start with a name; write NAME OP VALUE with NAME a "
     "field, metric or parameter (letters, digits, _ . : / -)"),
    ("", "--where '': give NAME OP VALUE comparisons joined by `and`, e.g. --where "
     "'val_auc>0.9 and LR=0.1'"),
    ("\x1b[2J=1", "--where '\\x1b[2J=1': '\\x1b[2J=1' does not start with a name; write NAME "
     "OP VALUE with NAME a field, metric or parameter (letters, digits, _ . : / -)"),
])
def test_parse_errors(expr: str, message: str) -> None:
    assert refusal(parse_where, expr) == message


RUN = record("ab12cd34", job="train", project="ml", experiment="main", exit="0",
             description="baseline", note="failed 2 attempts", started=1_000, ended=61_000,
             shard=0, params={"LR": "0.1", "OPT": "adam", "exit": "param-exit"},
             metrics={"val_auc": summary(0.91, 0.5, 0.93), "loss": summary(0.2, 0.1, 0.9),
                      "state": summary(7)})


@pytest.mark.parametrize(("name", "value"), [
    ("job", "train"), ("id", "ab12cd34"), ("run", "ab12cd34"), ("host", "gpu1"),
    ("experiment", "main"), ("exit", "0"), ("note", "baseline"),
    ("outcome_note", "failed 2 attempts"), ("duration", 60.0), ("started", 1000.0),
    ("shard", 0.0), ("cpus", 1.0), ("git_rev", None), ("submitted", None),  # empty / 0: lacking
    ("val_auc", 0.91), ("val_auc.last", 0.91), ("val_auc.min", 0.5), ("val_auc.max", 0.93),
    ("metrics.val_auc", 0.91), ("metrics.state", 7.0), ("state", "succeeded"),
    ("LR", "0.1"), ("params.LR", "0.1"), ("params.exit", "param-exit"), ("OPT", "adam"),
    ("nope", None), ("params.nope", None), ("metrics.LR", None), ("val_auc.mean", None),
])
def test_lookup(name: str, value: object) -> None:
    assert lookup(RUN, name) == value


@pytest.mark.parametrize(("expr", "hit"), [
    ("val_auc>0.9", True), ("val_auc>0.95", False), ("val_auc>=0.91", True),
    ("val_auc.min<0.6 and loss<0.3", True), ("val_auc.min<0.6 and loss<0.1", False),
    ("LR=0.10", True),  # both read as numbers
    ("LR>0.05", True), ("LR='0.10'", False),  # quoted: compared as strings
    ("OPT=adam", True), ("OPT!=adam", False), ("OPT!=sgd", True), ("OPT=3", False),
    ("OPT>3", False),  # a word cannot be ordered against a number: no match
    ("exit=0", True), ("exit!=0", False), ("state=succeeded", True),
    ("git_rev!=abc", False),  # lacking: never matches, not even !=
    ("nope!=1", False), ("duration>59", True), ("job=train and experiment=main", True),
    ("note='baseline'", True), ("note=failed", False),
    ("cpus=1", True),  # it claimed none: one CPU
])
def test_matches(expr: str, hit: bool) -> None:
    assert matches(RUN, parse_where(expr)) is hit


def test_garbled_record_values_lack_the_name() -> None:
    bad = record("ef56ab78", params="not json", metrics='{"val_auc": {"last": "x"}}')
    assert lookup(bad, "LR") is None
    assert not matches(bad, parse_where("val_auc>0"))


@pytest.mark.parametrize(("expr", "shown"), [
    ("val_auc > 0.90", "val_auc>0.90"), ("exit==0", "exit=0"), ("note='a b'", "note='a b'"),
    ("state!=failed", "state!=failed"), ("LR='0.1'", "LR='0.1'"), ("x=inf", "x=inf"),
    ("x='and'", "x='and'"),
])
def test_comparison_shown(expr: str, shown: str) -> None:
    (c,) = parse_where(expr)
    assert str(c) == shown
    assert parse_where(shown) == (c,)  # reads back the same
