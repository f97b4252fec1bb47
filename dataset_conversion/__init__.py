"""Converters from the challenge datasets' own layouts to nnU-Net raw format and back.

- ``convert_mslesseg`` / ``convert_msseg2`` / ``convert_isbi2015`` / ``convert_msseg2016`` /
  ``convert_3dmrms`` / ``convert_folders``: source dataset -> nnU-Net raw dataset
  (+ ``case_map.json`` and ``splits_final.json``).
- ``relabel_dataset``: a derived dataset with multi-size or distance-based labels.
- ``merge_datasets``: one dataset holding the cases of several converted ones.
- ``prepare_prediction_inputs`` / ``write_back``: a folder to predict -> nnU-Net
  inputs, and predicted masks -> the source's naming and header.
"""
from mslesseg_nnunet.dataset_conversion.back_conversion import load_case_map, write_back
from mslesseg_nnunet.dataset_conversion.folders import convert_folders
from mslesseg_nnunet.dataset_conversion.isbi2015 import convert_isbi2015
from mslesseg_nnunet.dataset_conversion.merge import merge_datasets
from mslesseg_nnunet.dataset_conversion.mslesseg import convert_mslesseg
from mslesseg_nnunet.dataset_conversion.msseg2 import convert_msseg2
from mslesseg_nnunet.dataset_conversion.msseg2016 import convert_msseg2016
from mslesseg_nnunet.dataset_conversion.mrms3d import convert_3dmrms
from mslesseg_nnunet.dataset_conversion.prediction_inputs import prepare_prediction_inputs
from mslesseg_nnunet.dataset_conversion.raw_dataset import claim_dataset_id
from mslesseg_nnunet.dataset_conversion.relabel import relabel_dataset

__all__ = ["convert_mslesseg", "convert_msseg2", "convert_isbi2015", "convert_msseg2016",
           "convert_3dmrms", "convert_folders", "relabel_dataset", "prepare_prediction_inputs",
           "write_back", "load_case_map", "merge_datasets", "claim_dataset_id"]
