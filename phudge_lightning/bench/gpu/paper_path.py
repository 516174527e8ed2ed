"""The paper's path end to end on a tiny random Phi-3: every command on what ``train.yaml`` writes.

Steps, each printed as one ``PASS``/``FAIL`` line (the figures follow at the end):

1. fit: ``phudge fit --config train.yaml`` (DeepSpeed ZeRO-2, bf16-mixed, LoRA 128,
   ``exclude_frozen_parameters``) for k = 9 steps (validated and checkpointed every k), on the
   demo set; ``last.ckpt`` must hold only what training changed;
2. resume: the same run resumed from that ``last.ckpt`` to step 2k, against an uninterrupted
   run to step 2k: the same validation loss (weights, optimizer, LR schedule and the data
   position restored; within 2%, for bf16);
3. validate ``--ckpt_path`` the resumed checkpoint; 4. grade; 5. evaluate on Vicuna;
6. export, and grade the export (the same scores); 7. serve one ``/grade`` request (the same
   score); 8. predict ``--ckpt_path`` (the same scores).

``--cpu`` runs it without a GPU or DeepSpeed (accelerator cpu, float32, k = 3), so CI proves the script.

    python phudge_lightning/bench/gpu/paper_path.py --workdir /tmp/paper-path          # on a GPU
    python phudge_lightning/bench/gpu/paper_path.py --cpu --evaluate-limit 16          # anywhere
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the project, and tests/tiny.py's tiny Phi-3

VICUNA = ROOT.parent / "shared/data/benchmarks/vicuna_eval.json"
RECORDS = [
    {"instruction": "How long should a steak rest after cooking?", "response": "About five minutes, so the juice stays in.",
     "reference_answer": "Five to ten minutes.", "rubric": "Is the answer correct and does it say why?"},
    {"instruction": "Why does bread need salt?", "response": "It does not.", "rubric": "Is the answer correct?"},
    {"instruction": "Write a python function that returns the sum of a list.", "response": "def total(xs): return sum(xs)"},
]


class Steps:
    """Runs named steps, prints one PASS/FAIL line each, keeps their figures."""

    def __init__(self):
        self.results: list[tuple[str, bool, float, str]] = []
        self.figures: dict[str, object] = {}

    def run(self, name: str, fn) -> object:
        start = time.perf_counter()
        try:
            detail = fn() or ""
            ok = True
        except Exception as e:  # a step that fails says why in its line; the traceback goes to stderr
            traceback.print_exc()
            detail, ok = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", False
        seconds = time.perf_counter() - start
        self.results.append((name, ok, seconds, detail))
        print(f"{'PASS' if ok else 'FAIL'} {name} ({seconds:.1f} s){': ' + detail if detail else ''}", flush=True)
        return ok


def cli(*argv: str) -> None:
    """``phudge ARGV`` in this process; a non-zero exit is an error."""
    from phudge_lightning.cli import main

    code = main(list(argv))
    if code not in (0, None):
        raise RuntimeError(f"phudge {argv[0]} exited {code}")


def scores(path: Path, key: str = "score") -> list[float]:
    return [json.loads(line)[key] for line in path.read_text().splitlines()]


def close(a: list[float], b: list[float], tol: float) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/phudge-paper-path")
    p.add_argument("--cpu", action="store_true", help="no GPU, no DeepSpeed: accelerator cpu, 32-bit")
    p.add_argument("--evaluate-limit", type=int, default=None, help="Vicuna items to evaluate (default all 320)")
    args = p.parse_args(argv)
    sys.argv = sys.argv[:1]  # LightningCLI, called in this process, would read this script's own arguments
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # the runs name the backbone by the relative path tiny-phi3, as the fixture does

    from tiny import save_tiny_backbone

    save_tiny_backbone("phi3", work / "tiny-phi3", chat=True)
    (work / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    device = ["--device", "cpu"] if args.cpu else []
    # On CPU: no DeepSpeed, 32-bit, and as little work as proves each step (CI runs it on 2 cores).
    hardware = (["--trainer.accelerator", "cpu", "--trainer.strategy", "auto", "--trainer.precision", "32-true",
                 "--model.dtype", "float32", "--model.gradient_checkpointing", "false", "--data.num_workers", "0"]
                if args.cpu else ["--data.num_workers", "2"])
    k = 3 if args.cpu else 9  # steps before the first checkpoint; the resumed run goes on to 2k

    def fit(name: str, steps: int, *extra: str) -> Path:
        from phudge_lightning.cli import lightning_cli

        run = lightning_cli(["fit", "--config", str(ROOT / "train.yaml"), *hardware, "--model.backbone", "tiny-phi3",
                             "--data.data", "demo", "--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(k),
                             "--trainer.default_root_dir", name, "--trainer.logger.init_args.save_dir", name,
                             "--trainer.enable_progress_bar", "false", *extra])
        # What the optimizer and the LR schedule counted: all the steps only if a resume restored them.
        optimizer = run.trainer.optimizers[0]
        inner = getattr(optimizer, "optimizer", optimizer)  # DeepSpeed's ZeRO optimizer wraps torch's AdamW
        adam_steps = max(int(s["step"]) for s in inner.state.values() if "step" in s)
        state[f"counts-{name}-{steps}"] = (adam_steps, run.trainer.lr_scheduler_configs[0].scheduler.last_epoch)
        # The run's end, saved here: ModelCheckpoint rewrites last.ckpt only beside a new best, so a
        # run whose val/loss rose at its last validation keeps an older last.ckpt.
        state[f"val-{name}-{steps}"] = float(run.trainer.callback_metrics["val/loss"])
        state[f"end-{name}-{steps}"] = end = work / name / f"end-step-{steps}.ckpt"
        run.trainer.save_checkpoint(end)
        return max((work / name).glob("*/version_*/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime)

    steps, state = Steps(), {}

    def step_fit():
        from phudge_lightning.formats import kind_of, load
        from phudge_lightning.model.deepspeed_states import saved_weight_names

        state["first"] = last = fit("first", k)
        kind = kind_of(last).name
        if not args.cpu:
            names = saved_weight_names(last)
            trained = set(load(last).trained_state_dict())
            if names != trained:
                raise AssertionError(f"last.ckpt holds {len(names)} weights, training changed {len(trained)}")
            size = sum(f.stat().st_size for f in last.rglob("*model_states.pt"))
            steps.figures["model_states_bytes"] = size
        return f"{last.relative_to(work)} ({kind})"

    def step_resume():
        from phudge_lightning.formats import read_checkpoint

        fit("whole", 2 * k)
        fit("first", 2 * k, "--ckpt_path", str(state["first"]))
        state["ckpt"] = resumed = state[f"end-first-{2 * k}"]
        a, b = read_checkpoint(state[f"end-whole-{2 * k}"]), read_checkpoint(resumed)
        if (a["global_step"], b["global_step"]) != (2 * k, 2 * k):
            raise AssertionError(f"global steps {a['global_step']} and {b['global_step']}, not {2 * k}")
        counts = state[f"counts-whole-{2 * k}"], state[f"counts-first-{2 * k}"]
        if counts[0] != counts[1] or counts[1][0] != 2 * k:
            raise AssertionError(f"(Adam steps, LR schedule steps): uninterrupted {counts[0]}, resumed {counts[1]}")
        loss = [state[f"val-whole-{2 * k}"], state[f"val-first-{2 * k}"]]
        steps.figures["val_loss_whole_resumed"] = loss
        if abs(loss[0] - loss[1]) > 0.02 * abs(loss[0]):
            raise AssertionError(f"val/loss at step {2 * k}: uninterrupted {loss[0]:.4f}, resumed {loss[1]:.4f}")
        return (f"step {2 * k}, Adam and the LR schedule at step {counts[1][0]} and {counts[1][1]} as uninterrupted, "
                f"val/loss uninterrupted {loss[0]:.4f}, resumed {loss[1]:.4f}")

    def step_validate():
        from phudge_lightning.cli import lightning_cli

        run = lightning_cli(["validate", "--config", str(ROOT / "train.yaml"), *hardware, "--model.backbone", "tiny-phi3",
                             "--data.data", "demo", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                             "--ckpt_path", str(state["ckpt"])])
        steps.figures["val_loss"] = float(run.trainer.callback_metrics["val/loss"])
        return f"val/loss {steps.figures['val_loss']:.4f}"

    def step_grade():
        cli("grade", "--checkpoint", str(state["ckpt"]), "--input", "in.jsonl", "--output", "graded.jsonl", "--overwrite",
            *device)
        state["scores"] = scores(work / "graded.jsonl")
        return f"scores {[round(s, 4) for s in state['scores']]}"

    def step_evaluate():
        limit = ["--limit", str(args.evaluate_limit)] if args.evaluate_limit else []
        cli("evaluate", "--checkpoint", str(state["ckpt"]), "--benchmark", "vicuna", "--data", str(VICUNA),
            "--output", "vicuna.json", *limit, *device)
        result = json.loads((work / "vicuna.json").read_text())
        steps.figures["vicuna"] = {k: result[k] for k in ("n", "pearson", "spearman")}
        return f"n {result['n']}, pearson {result['pearson']:.4f} (a tiny random model: the figure is not the point)"

    def step_export():
        cli("export", "--checkpoint", str(state["ckpt"]), "--output", "export")
        cli("grade", "--checkpoint", "export", "--input", "in.jsonl", "--output", "graded-export.jsonl", "--overwrite",
            *device)
        if not close(scores(work / "graded-export.jsonl"), state["scores"], 1e-4):
            raise AssertionError("the export grades otherwise than its checkpoint")
        return "the export grades as its checkpoint"

    def step_serve():
        port = free_port()
        log = (work / "serve.log").open("w")
        server = subprocess.Popen([sys.executable, "-m", "phudge_lightning.cli", "serve", "--checkpoint", str(state["ckpt"]),
                                   "--port", str(port), *device], stdout=log, stderr=log, cwd=work,
                                  env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
        try:
            deadline = time.monotonic() + 240
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the server did not come up (see {work / 'serve.log'})")
                    time.sleep(0.5)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/grade", data=json.dumps(RECORDS[0]).encode(),
                                             headers={"Content-Type": "application/json"})
            start = time.perf_counter()
            answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
            steps.figures["serve_one_request_ms"] = 1000 * (time.perf_counter() - start)
        finally:
            server.terminate()
            server.wait(timeout=60)
        score = answer["score"] if isinstance(answer, dict) else answer[0]["score"]
        if abs(score - state["scores"][0]) > 1e-3:
            raise AssertionError(f"/grade said {score}, phudge grade {state['scores'][0]}")
        return f"/grade score {score:.4f} in {steps.figures['serve_one_request_ms']:.0f} ms"

    def step_predict():
        cli("predict", "--config", str(ROOT / "train.yaml"), *hardware, "--model.backbone", "tiny-phi3",
            "--data.data", "demo", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--ckpt_path", str(state["ckpt"]), "--data.predict_data", "in.jsonl", "--predict_writer.output_dir", "predictions")
        predicted = scores(work / "predictions" / "predictions.jsonl")
        # (predict runs the LoRA unmerged, in the trainer's precision: rounding differs)
        tol = 1e-3 if args.cpu else 5e-2
        if not close(predicted, state["scores"], tol):
            raise AssertionError(f"predict gave {predicted}, grade {state['scores']}")
        return f"scores {[round(s, 4) for s in predicted]}"

    for name, fn in [("fit", step_fit), ("resume from last.ckpt", step_resume), ("validate --ckpt_path", step_validate),
                     ("grade", step_grade), ("evaluate vicuna", step_evaluate), ("export, grade the export", step_export),
                     ("serve one /grade", step_serve), ("predict --ckpt_path", step_predict)]:
        needs = {"resume from last.ckpt": "first"}.get(name, "ckpt" if name != "fit" else None)
        if needs and needs not in state:
            steps.results.append((name, False, 0.0, "skipped: an earlier step failed"))
            print(f"FAIL {name}: skipped, an earlier step failed", flush=True)
            continue
        steps.run(name, fn)
    passed = sum(ok for _, ok, _, _ in steps.results)
    steps.figures["seconds"] = {name: round(s, 1) for name, _, s, _ in steps.results}
    print(f"paper path: {passed}/{len(steps.results)} steps passed ({'cpu' if args.cpu else 'gpu'})")
    print(json.dumps({"paper_path": steps.figures, "passed": passed, "steps": len(steps.results)}), flush=True)
    return 0 if passed == len(steps.results) else 1


if __name__ == "__main__":
    sys.exit(main())
