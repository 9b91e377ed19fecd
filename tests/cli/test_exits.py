"""The one error -> exit-code policy: a composition error is one sentence and exit 2 in every command."""

from __future__ import annotations

import pytest
from conftest import run_cli

from seqrec_cli.config.registry import composition_sentence


@pytest.mark.parametrize(
    "module, args, words",
    [
        ("seqrec_cli.cli.eval", ["run=nowhere", "+foo=1"], ["Unknown config key foo", "seqrec-eval"]),
        ("seqrec_cli.cli.eval", ["run=nowhere", "foo=1"], ["Unknown config key foo"]),
        ("seqrec_cli.cli.recommend", ["run=nowhere", "k=abc"], ["Invalid override k=abc", "Integer"]),
        ("seqrec_cli.cli.export", ["run=nowhere", "k_max=zz"], ["Invalid override k_max=zz"]),
        ("seqrec_cli.cli.serve", ["bundle=nowhere", "port=[1"], ["Invalid command line", "seqrec-serve --help"]),
        ("seqrec_cli.cli.train", ["trainer.max_epochs=abc"], ["Invalid override trainer.max_epochs=abc"]),
    ],
)
def test_every_command_answers_a_composition_error_with_one_sentence_and_exit_2(tmp_path, module, args, words):
    result = run_cli(args, tmp_path, module=module)
    out = result.stderr + result.stdout
    assert result.returncode == 2, out
    assert "Traceback" not in out and "HYDRA_FULL_ERROR" not in out, out
    assert all(w in " ".join(out.split()) for w in words), out
    assert not list(tmp_path.glob("outputs")), "a refused command creates no output folder"


class _Cause(Exception):
    pass


def test_the_sentence_takes_the_reason_from_the_exception_s_cause():
    exc = RuntimeError("Error merging override trainer.lr=x")
    exc.__cause__ = _Cause("Value 'x' of type 'str' could not be converted to Float\n    full_key: trainer.lr")
    sentence = composition_sentence(exc, "seqrec-train")
    assert sentence == (
        "Invalid override trainer.lr=x: Value 'x' of type 'str' could not be converted to Float "
        "(see seqrec-train --help)."
    )


def test_a_missing_option_lists_the_options_and_not_the_search_path():
    exc = RuntimeError(
        "In 'train': Could not find 'encoder/transformer'\n\nAvailable options in 'encoder':\n\tattention\n\tgru\n"
        "Config search path:\n\tprovider=hydra, path=pkg://hydra.conf"
    )
    assert composition_sentence(exc, "seqrec-train") == (
        "Unknown option 'transformer' for encoder: Available options in 'encoder' are attention, gru."
    )
