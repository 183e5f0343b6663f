"""Stage 2, MGT (Multimodal Generalization Training): rule-based RL on multimodal data, starting from FRE.

    python -m lmmr1.stages.mgt                                  # embedded default: from runs/default_fre/final
    python -m lmmr1.stages.mgt --config stages/lmmr1_mgt_geo.yaml stage.init_from=runs/lmmr1_fre_text
    python -m lmmr1.stages.mgt --help

`stage.init_from` names FRE's run directory (its `final/` is used: the run-directory convention) or an
explicit checkpoint; the stage prints which.
"""

import sys

from lmmr1.stages.common import main

if __name__ == "__main__":
    sys.exit(main("mgt"))
