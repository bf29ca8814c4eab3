import argparse

import pytest

from omnisift.evaluation.cli import main, register


def test_register_adds_eval_and_report():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["eval", "--benchmark", "videomme", "--media-root", "m", "--model", "tiny", "--retain", "0.25"]
    )
    assert args.command == "eval" and args.retain == 0.25 and args.method == "omnisift"
    assert args.batch_size == 1 and args.shard is None
    assert args.protocol == "omnisift-paper" and args.max_new_tokens is None  # the preset decides: 1024
    assert callable(args.func)
    args = parser.parse_args(["report", "runs", "--judge-url", "http://x/v1", "--judge-model", "j"])
    assert str(args.dir) == "runs" and callable(args.func)


def test_eval_then_report_on_tiny_model(question_files, media_root, tmp_path, capsys):
    out = tmp_path / "runs"
    base = ["eval", "--benchmark", "worldsense", "--media-root", str(media_root), "--model", "tiny"]
    base += ["--questions", str(question_files["worldsense"]), "--out", str(out), "--limit", "2"]
    base += ["--max-new-tokens", "2", "--no-progress", "--batch-size", "2", "--workers", "0"]
    assert main([*base, "--method", "none"]) == 0
    printed = capsys.readouterr().out
    assert "2 new rows" in printed and "RANDOM WEIGHTS" in printed
    assert main([*base, "--method", "omnisift", "--retain", "0.5"]) == 0
    assert "tokens kept" in capsys.readouterr().out

    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Full tokens" in printed and "omnisift retain 0.5" in printed and "WorldSense" in printed
    assert (out / "report.png").is_file()


def test_eval_reports_missing_media_with_exit_code(question_files, media_root, tmp_path, capsys):
    argv = ["eval", "--benchmark", "dailyomni", "--media-root", str(media_root), "--model", "tiny"]
    argv += ["--questions", str(question_files["dailyomni"]), "--out", str(tmp_path), "--method", "none"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "1 of 6 questions" in err and "--skip-missing" in err


def test_default_answer_length_is_the_thinkers_own_limit():
    """docs/design.md#measured-corrections: the published answers were capped at 1024 new tokens, not 256."""
    from omnisift.inputs import Protocol

    assert Protocol().max_new_tokens == 1024


def test_eval_runs_inner_llm_methods_and_reports_both_budgets(question_files, media_root, tmp_path, capsys):
    """fastv-om through the command line on the 2-layer tiny model (its drop before layer 1), and seats'
    refusal of a depth it has no layer defaults for, naming the settings to give."""
    import json

    out = tmp_path / "runs"
    base = ["eval", "--benchmark", "worldsense", "--media-root", str(media_root), "--model", "tiny"]
    base += ["--questions", str(question_files["worldsense"]), "--out", str(out), "--limit", "2"]
    base += ["--max-new-tokens", "2", "--no-progress", "--workers", "0", "--retain", "0.25"]
    assert main([*base, "--method", "fastv-om", "--method-param", "k=1"]) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "fastv-om retain 0.25" in capsys.readouterr().out
    (run,) = json.loads((out / "report.json").read_text())
    # FastV keeps every token at the input and drops inside the LLM: the two budgets differ
    assert run["retained"] == 1.0 and run["layer_avg_kept"] < 1.0 and run["prefill_flops_ratio"] < 1.0
    assert main([*base, "--method", "seats"]) != 0
    assert "drop_layers" in capsys.readouterr().err


@pytest.mark.parametrize("entry", ["omnisift", "python -m omnisift.evaluation"])
def test_a_run_whose_generations_all_fail_ends_in_one_line(
    entry, question_files, media_root, tmp_path, capsys, caplog, monkeypatch
):
    """A setup problem (every generation fails) ends each entry point with one line naming it and exit
    code 2: main logged a traceback per failed question first, and the module form ended in a traceback."""
    import omnisift.cli
    from omnisift.evaluation import runner

    def broken_generate(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(runner, "_generate", broken_generate)
    argv = ["eval", "--benchmark", "worldsense", "--media-root", str(media_root), "--model", "tiny"]
    argv += ["--questions", str(question_files["worldsense"]), "--out", str(tmp_path), "--method", "none"]
    argv += ["--max-new-tokens", "2", "--no-progress", "--workers", "0"]
    run = omnisift.cli.main if entry == "omnisift" else main
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert "error: the first 3 generations all failed" in err and "device-side assert" in err
    assert "Traceback" not in err
    assert not [record for record in caplog.records if record.exc_info]
