"""grade, evaluate and serve take the same judge-loading flags, and hand them to Judge.load alike."""

import pytest

from phudge_lightning.evaluate import run as evaluation
from phudge_lightning.grade import command as grading
from phudge_lightning.serve import app as serving
from phudge_lightning.judge_options import judge_options

FLAGS = ["--max-length", "64", "--device", "cpu", "--dtype", "bfloat16", "--lora-scale", "0.5"]
PARSERS = {
    "grade": lambda extra: grading.parse_args(["--checkpoint", "c", "--input", "i", "--output", "o", *extra]),
    "evaluate": lambda extra: evaluation.parse_args(["--checkpoint", "c", "--benchmark", "vicuna", "--data", "d", *extra]),
    "serve": lambda extra: serving.parser().parse_args(["--checkpoint", "c", *extra]),
}


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_judge_flags_reach_the_judge(command):
    assert judge_options(PARSERS[command](FLAGS)) == {"max_length": 64, "device": "cpu", "dtype": "bfloat16", "lora_scale": 0.5}
    assert judge_options(PARSERS[command]([])) == {"max_length": None, "device": None, "dtype": None, "lora_scale": 1.0}


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_an_unknown_dtype_is_refused(command, capsys):
    with pytest.raises(SystemExit):
        PARSERS[command](["--dtype", "int8"])
    assert "--dtype" in capsys.readouterr().err
