"""Stage 1, FRE (Foundational Reasoning Enhancement): rule-based RL on text-only reasoning data.

    python -m lmmr1.stages.fre                                  # embedded default: tiny model, synthetic `larger`
    python -m lmmr1.stages.fre --config stages/lmmr1_fre_text.yaml model.path=/models/Qwen2.5-VL-3B-Instruct
    python -m lmmr1.stages.fre --help                           # every config field, documented

The stage's run directory ends with `final/`, the HF checkpoint MGT starts from (`stage.init_from`).
"""

import sys

from lmmr1.stages.common import main

if __name__ == "__main__":
    sys.exit(main("fre"))
