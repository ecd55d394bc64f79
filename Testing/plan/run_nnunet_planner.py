"""Run nnU-Net v2's own fingerprint extraction and default planner; print the results as JSON.

Used by test_spacing_nnunet.py in a subprocess, because nnU-Net reads its folders from the
``nnUNet_raw`` / ``nnUNet_preprocessed`` / ``nnUNet_results`` environment variables at import.

    python run_nnunet_planner.py REQUEST.json

REQUEST: ``{"datasets": [{"id": 901, "samples_per_case": 10000}, ...],
"rule_cases": [{"spacings": [[z, y, x], ...], "shapes_after_crop": [[z, y, x], ...]}, ...]}``.
For each dataset: ``DatasetFingerprintExtractor`` with a foreground budget of
``samples_per_case`` per case (nnU-Net's default is 1e8 in total), then ``ExperimentPlanner``.
For each rule case: ``ExperimentPlanner.determine_fullres_target_spacing`` on that fingerprint.
Prints one JSON line: ``{"datasets": {id: {"fingerprint", "plans", "seconds"}}, "rule": [[...]]}``.
"""

import json
import sys
import time


def main(request_path: str) -> None:
    import numpy as np
    from batchgenerators.utilities.file_and_folder_operations import load_json, join
    from nnunetv2.configuration import ANISO_THRESHOLD
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiment_dataset
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    request = json.loads(open(request_path).read())
    out = {"datasets": {}, "rule": []}
    for ds in request.get("datasets", []):
        t0 = time.perf_counter()
        fpe = DatasetFingerprintExtractor(ds["id"], num_processes=1, verbose=False)
        fpe.show_progress_bar = False
        fpe.num_foreground_voxels_for_intensitystats = ds["samples_per_case"] * len(fpe.dataset)
        fingerprint = fpe.run(overwrite_existing=True)
        t1 = time.perf_counter()
        _, plans_name = plan_experiment_dataset(ds["id"], ExperimentPlanner)
        t2 = time.perf_counter()
        name = convert_id_to_dataset_name(ds["id"])
        out["datasets"][str(ds["id"])] = {
            "fingerprint": load_json(join(nnUNet_preprocessed, name, "dataset_fingerprint.json")),
            "plans": load_json(join(nnUNet_preprocessed, name, plans_name + ".json")),
            "seconds": {"fingerprint": t1 - t0, "planning": t2 - t1}}
        del fingerprint
    for case in request.get("rule_cases", []):
        planner = ExperimentPlanner.__new__(ExperimentPlanner)  # the rule only, without a dataset on disk
        planner.overwrite_target_spacing = None
        planner.anisotropy_threshold = ANISO_THRESHOLD
        planner.dataset_fingerprint = case
        out["rule"].append([float(v) for v in np.asarray(planner.determine_fullres_target_spacing())])
    sys.stdout.write("\nRESULT " + json.dumps(out) + "\n")


if __name__ == "__main__":  # the fingerprint extractor's worker pool re-imports this file ("spawn")
    main(sys.argv[1])
