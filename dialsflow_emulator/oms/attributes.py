"""OMS attribute tables (docs/reference/oms.md §6): names, API types, units, as `/meta` lists
them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: One row of a resource: values in the order of its attribute table.
Row = tuple[Any, ...]


INT, FRACTION, BOOL, STRING, DATETIME, LIST = (
    "Integer", "Fraction", "Boolean", "String", "DateTime", "List")
PB, INST = "pb^{-1}", "10^{34}cm^{-2}s^{-1}"


@dataclass(frozen=True)
class Attr:
    """One attribute as `/meta` describes it (§4.2); `units` also feeds `meta.row`."""

    name: str
    api_type: str
    description: str
    units: str = ""

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").title()

    def meta(self) -> dict[str, Any]:
        return {"title": self.title, "description": self.description,
                "api_type": self.api_type, "units": self.units,
                "sortable": True, "searchable": True, "projectable": True}


RUN_ATTRS = (
    Attr("run_number", INT, "Run number"),
    Attr("fill_number", INT, "LHC fill number"),
    Attr("start_time", DATETIME, "Run start time (UTC)"),
    Attr("end_time", DATETIME, "Run end time (UTC); null while the run is ongoing"),
    Attr("last_update", DATETIME, "Last time the run record changed"),
    Attr("duration", INT, "Run duration; null while ongoing", "s"),
    Attr("last_lumisection_number", INT, "Last lumisection number"),
    Attr("delivered_lumi", FRACTION, "Integrated luminosity delivered by the LHC", PB),
    Attr("recorded_lumi", FRACTION, "Integrated luminosity recorded by CMS", PB),
    Attr("init_lumi", FRACTION, "Instantaneous luminosity at run start", INST),
    Attr("end_lumi", FRACTION, "Instantaneous luminosity at run end", INST),
    Attr("stable_beam", BOOL, "Stable beams during the run"),
    Attr("energy", INT, "Beam energy", "GeV"),
    Attr("b_field", FRACTION, "Magnetic field", "T"),
    Attr("fill_type_runtime", STRING, "Fill type at run time"),
    Attr("fill_type_party1", STRING, "Particle type of beam 1"),
    Attr("fill_type_party2", STRING, "Particle type of beam 2"),
    Attr("l1_key", STRING, "L1 trigger key"),
    Attr("l1_key_stripped", STRING, "L1 trigger key without prefix"),
    Attr("hlt_key", STRING, "HLT configuration key"),
    Attr("l1_menu", STRING, "L1 menu"),
    Attr("l1_hlt_mode", STRING, "L1+HLT mode"),
    Attr("l1_hlt_mode_stripped", STRING, "L1+HLT mode without version"),
    Attr("trigger_mode", STRING, "Trigger mode"),
    Attr("sequence", STRING, "Run sequence (GLOBAL-RUN for global runs)"),
    Attr("clock_type", STRING, "Clock source"),
    Attr("cmssw_version", STRING, "CMSSW version of the HLT"),
    Attr("components", LIST, "Subsystems included in the run"),
    Attr("components_out", LIST, "Subsystems excluded from the run"),
    Attr("l1_rate", FRACTION, "Average L1 accept rate", "Hz"),
    Attr("l1_triggers_counter", INT, "Number of L1 accepts; null while ongoing"),
    Attr("hlt_physics_rate", FRACTION, "Average HLT physics stream rate", "Hz"),
    Attr("hlt_physics_size", FRACTION, "Average HLT physics event size", "MB"),
    Attr("hlt_physics_throughput", FRACTION, "Average HLT physics throughput", "GB/s"),
    Attr("hlt_physics_counter", INT, "HLT physics events; null while ongoing"),
    Attr("initial_prescale_index", INT, "Prescale column at run start"),
    Attr("tier0_transfer", BOOL, "Data transferred to Tier-0"),
    # No `era`: real run records show none (docs/reference/oms.md §6.1).
    Attr("injection_scheme", STRING, "LHC injection scheme of the fill"),
)

#: Subsystem DCS bits of a lumisection (§6.2), grouped by how the world drives them.
TRACKER_BITS = ("bpix", "fpix", "tibtid", "tob", "tecp", "tecm")
OTHER_BITS = ("ebp", "ebm", "eep", "eem", "esp", "esm", "hbhea", "hbheb", "hbhec", "hf", "ho",
              "rpc", "dt0", "dtp", "dtm", "cscp", "cscm", "gem", "gemp", "gemm")
UNMONITORED_BITS = ("castor", "zdc")
PPS_BITS = ("rp_time", "rp_sect_45", "rp_sect_56")

LS_ATTRS = (
    Attr("run_number", INT, "Run number"),
    Attr("lumisection_number", INT, "Lumisection number"),
    Attr("fill_number", INT, "LHC fill number"),
    Attr("start_time", DATETIME, "Lumisection start time (UTC)"),
    Attr("end_time", DATETIME, "Lumisection end time (UTC)"),
    Attr("delivered_lumi", FRACTION, "Delivered luminosity integrated over the run so far", PB),
    Attr("recorded_lumi", FRACTION, "Recorded luminosity integrated over the run so far", PB),
    Attr("delivered_lumi_per_lumisection", FRACTION, "Delivered luminosity in this LS", PB),
    Attr("recorded_lumi_per_lumisection", FRACTION, "Recorded luminosity in this LS", PB),
    Attr("init_lumi", FRACTION, "Instantaneous luminosity at LS start", INST),
    Attr("end_lumi", FRACTION, "Instantaneous luminosity at LS end", INST),
    Attr("pileup", FRACTION, "Average pileup"),
    Attr("physics_flag", BOOL, "Physics declared"),
    Attr("beams_stable", BOOL, "Stable beams"),
    Attr("cms_active", BOOL, "CMS taking data"),
    Attr("beam1_present", BOOL, "Beam 1 present"),
    Attr("beam1_stable", BOOL, "Beam 1 stable"),
    Attr("beam2_present", BOOL, "Beam 2 present"),
    Attr("beam2_stable", BOOL, "Beam 2 stable"),
    Attr("prescale_index", INT, "Prescale column"),
    Attr("prescale_name", STRING, "Prescale column name"),
    *(Attr(f"{bit}_ready", BOOL, f"DCS: {bit} ready")
      for bit in (*TRACKER_BITS, *OTHER_BITS, *UNMONITORED_BITS, *PPS_BITS)),
)

FILL_ATTRS = (
    Attr("fill_number", INT, "LHC fill number"),
    Attr("start_time", DATETIME, "Fill start time (UTC)"),
    Attr("end_time", DATETIME, "Fill end time (UTC); null while the fill is ongoing"),
    Attr("start_stable_beam", DATETIME, "Start of stable beams"),
    Attr("end_stable_beam", DATETIME, "End of stable beams"),
    Attr("duration", INT, "Fill duration; null while ongoing", "s"),
    Attr("delivered_lumi", FRACTION, "Integrated luminosity delivered in the fill", PB),
    Attr("recorded_lumi", FRACTION, "Integrated luminosity recorded by CMS in the fill", PB),
    Attr("init_lumi", FRACTION, "Instantaneous luminosity at the start of stable beams", INST),
    Attr("peak_lumi", FRACTION, "Peak instantaneous luminosity", INST),
    Attr("peak_pileup", FRACTION, "Peak pileup"),
    Attr("peak_specific_lumi", FRACTION, "Peak specific luminosity"),
    Attr("efficiency_lumi", FRACTION, "Recorded over delivered luminosity"),
    Attr("efficiency_time", FRACTION, "Share of stable-beam time CMS was running"),
    Attr("bunches_beam1", INT, "Bunches in beam 1"),
    Attr("bunches_beam2", INT, "Bunches in beam 2"),
    Attr("bunches_colliding", INT, "Bunches colliding at IP5"),
    Attr("bunches_target", INT, "Target number of bunches"),
    Attr("beta_star", FRACTION, "Beta* at IP5", "cm"),
    Attr("crossing_angle", FRACTION, "Half crossing angle at IP5", "{\\mu}rad"),
    Attr("intensity_beam1", FRACTION, "Beam 1 intensity", "10^{11}"),
    Attr("intensity_beam2", FRACTION, "Beam 2 intensity", "10^{11}"),
    Attr("energy", INT, "Beam energy", "GeV"),
    Attr("b_field", FRACTION, "Magnetic field", "T"),
    Attr("era", STRING, "Acquisition era"),
    Attr("injection_scheme", STRING, "LHC injection scheme"),
    Attr("fill_type_runtime", STRING, "Fill type"),
    Attr("fill_type_party1", STRING, "Particle type of beam 1"),
    Attr("fill_type_party2", STRING, "Particle type of beam 2"),
    Attr("first_run_number", INT, "First CMS run of the fill"),
    Attr("last_run_number", INT, "Last CMS run of the fill"),
    Attr("downtime", INT, "Downtime during stable beams", "s"),
    Attr("to_ready_time", INT, "From stable beams to CMS ready", "s"),
    Attr("to_dump_ready_time", INT, "From stable beams to ready-for-dump", "s"),
    Attr("dump_ready_to_dump_time", INT, "From ready-for-dump to beam dump", "s"),
    Attr("stable_beams", BOOL, "The fill reached stable beams"),
)

# Per-run HLT paths and per-LS trigger rates (§6.4-§6.6). Names as the public users read them:
# RateMon `ratemon/DBParser.py` (hltpathinfo `path_id`, `path_name`; hltpathrates `rate`,
# `first_lumisection_number`, filter on `last_lumisection_number`), boundino/omstools
# `hltcount.py` (`counter`), pixelae `tools/omsapi/examples.py` and
# `studies/pixel_clusters_2024/omstools/omstools.py`, DQMExplore `scripts/utils.py` and
# `src/dqmexplore/oms.py` (datasetrates).
HLTPATHINFO_ATTRS = (
    Attr("run_number", INT, "Run number"),
    Attr("path_id", INT, "HLT path id in the run's HLT configuration"),
    Attr("path_name", STRING, "HLT path name with its version"),
)

HLTPATHRATES_ATTRS = (
    Attr("run_number", INT, "Run number"),
    Attr("path_id", INT, "HLT path id in the run's HLT configuration"),
    Attr("path_name", STRING, "HLT path name with its version"),
    Attr("first_lumisection_number", INT, "First lumisection of the group"),
    Attr("last_lumisection_number", INT, "Last lumisection of the group"),
    Attr("start_time", DATETIME, "Start of the group (UTC)"),
    Attr("rate", FRACTION, "Path accept rate over the group", "Hz"),
    Attr("counter", INT, "Path accepts in the group"),
)

DATASETRATES_ATTRS = (
    Attr("run_number", INT, "Run number"),
    Attr("dataset_name", STRING, "Primary dataset name"),
    Attr("first_lumisection_number", INT, "First lumisection of the group"),
    Attr("last_lumisection_number", INT, "Last lumisection of the group"),
    Attr("last_lumisection_in_run", BOOL, "The group holds the run's last lumisection"),
    Attr("start_time", DATETIME, "Start of the group (UTC)"),
    Attr("rate", FRACTION, "Dataset event rate over the group", "Hz"),
    Attr("events", INT, "Dataset events in the group"),
    Attr("cms_active", BOOL, "CMS taking data"),
)
