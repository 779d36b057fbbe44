"""ALICE O2's ZN fast simulation: the files it loads, and a runner that uses them as O2 does.

Per primary particle, O2 runs two ONNX models on the CPU (onnxruntime, one intra-op
thread, batch 1, inputs bound by position, float32):

1. the classifier, on the 9 attributes standardised with its own scales file; O2
   simulates the particle only when std::round of output 0 is non-zero;
2. the generator, on standard-normal noise (1, 10) and the 9 standardised attributes;
   O2 reads output 0 as 1936 floats, log(1 + photons), and records (int) expm1(value)
   photons per fibre (index 44 * y + x, x the column), the common PMT taking the fibres
   with x + y even.

O2 builds the attributes in GeV, cm and MeV, with the charge in units of |e|/3; the
exported scales files take that unit into account. See ``export`` for the files and
``graphs`` for what the graphs compute.
"""

from calosim.production.o2.export import (
    HIT_PARITY,
    MANIFEST_FILE,
    O2Export,
    export_o2,
    export_refusal,
    o2_standardiser,
)
from calosim.production.o2.graphs import DECISIONS, O2_NOISE_DIM
from calosim.production.o2.runtime import O2Runtime, o2_attributes

__all__ = ["DECISIONS", "HIT_PARITY", "MANIFEST_FILE", "O2_NOISE_DIM", "O2Export",
           "O2Runtime", "export_o2", "export_refusal", "o2_attributes", "o2_standardiser"]
