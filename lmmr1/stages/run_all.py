"""Run a list of stages in order: each one's config is validated before the first starts.

    python -m lmmr1.stages.run_all                                    # default FRE, then default MGT
    python -m lmmr1.stages.run_all stages/lmmr1_fre_text.yaml stages/lmmr1_mgt_geo.yaml -o model.path=/m/3B
    python -m lmmr1.stages.run_all -o rollout.backend=hf -o train.steps=2

`-o key=value` applies to every stage. A later stage's `stage.init_from` may name an earlier stage's run
directory that does not exist yet: that check waits until the stage starts (everything else is checked first).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lmmr1.config import ConfigError
from lmmr1.stages.common import load_config, run_stage, validate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmmr1.stages.run_all", description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", help="stage YAMLs in order; none: the default FRE then the default MGT")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="key.sub=value",
                        help="override applied to every stage (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="validate every stage's config and stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plan = [(path, None) for path in args.configs] or [(None, "fre"), (None, "mgt")]
    try:
        configs = [load_config(stage or "fre", path, args.override) for path, stage in plan]
        produced = set()
        for cfg in configs:
            if cfg.stage.init_from and str(Path(cfg.stage.init_from)) in produced:
                validate(cfg, check_paths=False)  # the earlier stage will write it
            else:
                validate(cfg)
            produced.add(str(Path(cfg.train.run_dir)))
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    for cfg in configs:
        print(f"[run_all] {cfg.stage.name}: {cfg.train.run_dir}" + (f" (from {cfg.stage.init_from})" if cfg.stage.init_from else ""))
    if args.dry_run:
        return 0
    for cfg in configs:
        run_stage(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
