"""pip's requirement-file grammar (stacksync.lock.reqsyntax), function by function: decoding, logical
lines, comments, ${VAR}, the requirement / options split and pip's option table."""

from __future__ import annotations

import codecs

import pytest

from stacksync.lock import reqsyntax as rs


def test_decode_boms_coding_comment_and_utf8() -> None:
    assert rs.decode(codecs.BOM_UTF8 + b"a==1\n") == ("a==1\n", "utf-8")
    assert rs.decode("a==1\n".encode("utf-16")) == ("a==1\n", "utf-16")  # PowerShell's `>` (BOM first)
    assert rs.decode(codecs.BOM_UTF16_BE + "a==1\n".encode("utf-16-be")) == ("a==1\n", "utf-16-be")
    assert rs.decode("# -*- coding: latin-1 -*-\nb==1  # caf\xe9\n".encode("latin-1"))[1] == "latin-1"
    assert rs.decode("é==1\n".encode()) == ("é==1\n", "utf-8")


def test_decode_errors_name_the_line() -> None:
    with pytest.raises(rs.DecodeError, match="unknown encoding") as unknown:
        rs.decode(b"# coding: nosuchcodec\na==1\n")
    assert unknown.value.line == 1
    with pytest.raises(rs.DecodeError, match="not valid utf-16") as bad:
        rs.decode(codecs.BOM_UTF16_LE + b"a\x00=\x00\n\x00\x00\xd8")
    assert bad.value.line >= 1


def test_logical_lines_join_continuations_and_keep_comment_lines() -> None:
    text = "# via torch\na==1 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n\nb==2  # trailing\n"
    out = list(rs.logical_lines(text))
    assert out[0] == rs.Physical(1, "# via torch")
    assert out[1] == rs.Logical(2, "a==1     --hash=sha256:aa     --hash=sha256:bb",
                                "a==1     --hash=sha256:aa     --hash=sha256:bb", 4)
    assert out[2] == rs.Logical(6, "b==2", "b==2", 6)


def test_comment_line_ends_a_continuation() -> None:
    out = list(rs.logical_lines("a==1 \\\n# a comment\nb==2\n"))
    assert [o.text for o in out if isinstance(o, rs.Logical)] == ["a==1", "b==2"]


def test_strip_comment_only_at_start_or_after_space() -> None:
    assert rs.strip_comment("pkg @ https://h/p.whl#sha256=abc  # note") == "pkg @ https://h/p.whl#sha256=abc"
    assert rs.strip_comment("#all") == ""
    assert rs.strip_comment("a==1\t# tab") == "a==1"


def test_expand_env_upper_case_set_and_non_empty_only() -> None:
    env = {"TOKEN": "s3cret", "EMPTY": ""}
    assert rs.expand_env("https://u:${TOKEN}@h/ ${EMPTY} ${lower} ${UNSET}", env) == \
        "https://u:s3cret@h/ ${EMPTY} ${lower} ${UNSET}"
    [line] = list(rs.logical_lines("-i https://${TOKEN}@h/simple\n", env))
    assert isinstance(line, rs.Logical) and line.text == "-i https://s3cret@h/simple"
    assert line.raw == "-i https://${TOKEN}@h/simple"  # a rewritten file keeps the variable


def test_break_args_options_at_first_dash_word() -> None:
    assert rs.break_args_options("a==1 --hash=sha256:aa") == ("a==1", "--hash=sha256:aa")
    assert rs.break_args_options('a==1 ; python_version >= "3.10"') == ('a==1 ; python_version >= "3.10"', "")
    assert rs.break_args_options("-r other.txt") == ("", "-r other.txt")


def test_parse_options_optparse_rules() -> None:
    got = [(spec.name, value) for spec, value in
           rs.parse_options("--hash=sha256:aa --hash sha256:bb -ihttps://h/simple --extra-index-url https://x")]
    assert got == [("--hash", "sha256:aa"), ("--hash", "sha256:bb"), ("--index-url", "https://h/simple"),
                   ("--extra-index-url", "https://x")]
    assert [s.name for s, _ in rs.parse_options("--pre")] == ["--pre"]
    assert [(s.name, v) for s, v in rs.parse_options("--extra-ind https://x")] == [("--extra-index-url", "https://x")]


@pytest.mark.parametrize(("text", "message"), [
    ("--nosuch", "unknown option --nosuch"),
    ("-Z", "unknown option -Z"),
    ("--hash", "requires 1 argument"),
    ("--pre=1", "does not take a value"),
    ("--hash=md5:abc", "malformed hash"),
    ("--hash=abc", "takes a hash name and a value"),
    ("--config-settings novalue", "KEY=VAL"),
    ("--hash='unterminated", "could not split options"),
])
def test_parse_options_refusals(text: str, message: str) -> None:
    with pytest.raises(rs.OptionSyntaxError, match=message):
        rs.parse_options(text)


def test_ambiguous_prefix_is_refused() -> None:
    with pytest.raises(rs.OptionSyntaxError, match="ambiguous option"):
        rs.parse_options("--no https://x")
