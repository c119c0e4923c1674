"""winnow.bundle: the one owner of the on-disk model bundle (layout, write, read, verify).

Training writes bundles (``write_bundle`` + ``fill_bundle``), the service and the engine read
them (``load_bundle``, ``load_ranker``), the CLI and the admin API activate and roll back. The
layout is documented in winnow.bundle.layout; artifacts are data (JSON, npz, LightGBM text,
faiss index files) listed with their sha256 in the manifest, never pickles.
"""

from winnow.bundle.layout import (
    ACTIVE,
    HISTORY,
    ITEM_ARRAYS,
    RANKER_DIR,
    SCHEMA_VERSION,
    SEGMENT_DIR,
    VERSION_RE,
    bundles_dir,
    check_version,
    new_version,
    part_dir,
)
from winnow.bundle.manifest import BundleInfo, sha256_file, verify_bundle
from winnow.bundle.read import (
    Bundle,
    FeatureInputs,
    feature_state_digests,
    has_ranker,
    load_bundle,
    load_feature_inputs,
    load_profile,
    load_ranker,
    load_segment,
    ranker_digests,
)
from winnow.bundle.versions import (
    activate,
    active_version,
    bundle_label,
    bundle_path,
    label_bundle,
    list_bundles,
    newest_manifest,
    previous_version,
    refuse_gate_failed,
    rollback,
    write_bundle,
)
from winnow.bundle.write import BundleContents, fill_bundle, save_ranker, write_contents

__all__ = [
    "ACTIVE", "HISTORY", "ITEM_ARRAYS", "RANKER_DIR", "SCHEMA_VERSION", "SEGMENT_DIR", "VERSION_RE",
    "Bundle", "BundleContents", "BundleInfo", "FeatureInputs", "activate", "active_version", "bundle_label", "bundle_path", "bundles_dir",
    "check_version", "feature_state_digests", "fill_bundle", "has_ranker", "label_bundle", "list_bundles",
    "load_bundle", "load_feature_inputs", "load_profile", "load_ranker", "load_segment", "new_version",
    "newest_manifest", "part_dir",
    "previous_version", "ranker_digests", "refuse_gate_failed", "rollback", "save_ranker", "sha256_file",
    "verify_bundle", "write_bundle", "write_contents",
]
