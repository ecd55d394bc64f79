"""Run a whole MedSeqFT sequence headless inside Slicer, through the module logic.

    Slicer --no-splash --no-main-window --python-script Resources/batch/run_sequence_slicer.py \
        --workspace /data/ws --foundation demo --device auto /data/Dataset001_Liver /data/Dataset002_Pancreas

Steps: init (if the workspace is new) -> add-task per dataset -> select (MDS) -> refine -> evaluate.
Exit status: 0 ok, 2 bad input (the message names the file), 3 cancelled, 1 internal error.
"""

import argparse
import sys


def main(argv):
    p = argparse.ArgumentParser(prog="run_sequence_slicer.py")
    p.add_argument("--workspace", required=True)
    p.add_argument("--foundation", default="demo", help="'demo' or a checkpoint file")
    p.add_argument("--preset", default="cpu_demo", choices=["cpu_demo", "paper"])
    p.add_argument("--device", default="auto")
    p.add_argument("datasets", nargs="+", help="dataset folders, in task order")
    args = p.parse_args(argv)
    import slicer

    logic = slicer.util.getModuleLogic("MedSeqFT")
    return logic.run_sequence(args.workspace, args.datasets, foundation=args.foundation, preset=args.preset,
                              device=args.device)


if __name__ == "__main__":
    code = 1
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        code = int(exc.code or 0)
    sys.exit(code)
