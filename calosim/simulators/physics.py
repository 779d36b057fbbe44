"""Every physical parameter of the embedded ZN Monte Carlo and the particle gun.

One place, each value with where it comes from:
- [facts]  /work/shared/reference/zdc-facts.md (ALICE ZDC geometry, real-dataset statistics,
  public ALICE O2 full-simulation response scale);
- [spec]   the project's specification of the embedded Monte Carlo;
- [PDG]    Review of Particle Physics (2024): particle masses, "Passage of particles
  through matter" (EM and hadronic shower profiles), atomic and nuclear properties of W;
- [GFlash] Grindhammer & Peters, "The parameterized simulation of electromagnetic showers
  in homogeneous and sampling calorimeters" (1993), the scheme behind Geant4 GFlash;
- [Groom]  D. E. Groom, NIM A 572 (2007) 633, electromagnetic fraction of hadron showers;
- [tuned]  no public number exists: chosen so the simulation meets the calibration of
  [facts] / [issue] (values measured by benchmarks/mc_calibration.py) or the real-dataset
  statistics (empty fraction, zero-pixel fraction, photon-sum quartiles).

Lengths in cm, energies in GeV (masses in MeV, as in the particle table).
"""

from __future__ import annotations

from dataclasses import dataclass

# --- ZN geometry -------------------------------------------------------------------------
ZN_FACE_DISTANCE_CM = 11250.0  # |z| of the ZN front face, 112.5 m [facts, issue]
ZN_HALF_WIDTH_CM = 3.52  # front face 7.04 x 7.04 cm [facts]
ZN_DEPTH_CM = 100.0  # absorber length [facts]
FIBRE_PITCH_CM = 0.16  # 44 x 44 fibres at 1.6 mm pitch [facts], = 2 * ZN_HALF_WIDTH_CM / 44
# 100 cm are about 8.7 interaction lengths of the W alloy [facts]; the issue quotes ~10 cm.
ZN_INTERACTION_LENGTH_CM = ZN_DEPTH_CM / 8.7
# W: X0 = 6.76 g/cm2 [PDG], in the 17.6 g/cm3 alloy [facts].
ZN_RADIATION_LENGTH_CM = 6.76 / 17.6
ZN_MOLIERE_RADIUS_CM = 0.93  # tungsten Moliere radius [issue; PDG W: 0.93 cm]
ZN_CRITICAL_ENERGY_GEV = 7.97e-3  # W, electrons [PDG]

# --- Transport to the face ---------------------------------------------------------------
# Spectator nucleons of LHC Pb-Pb collisions at sqrt(s_NN) = 5.02 TeV carry 2.51 TeV; the
# leading-particle peak of the gun spectrum sits there too.
BEAM_ENERGY_PER_NUCLEON_GEV = 2510.0
# The proton calorimeter sits outside the outgoing beam pipe [facts]; its centre is taken
# 20 cm from the ZN axis [tuned: the issue only asks that beam-energy protons land well
# outside the ZN, towards ZP].
ZP_OFFSET_CM = 20.0
# Horizontal dipole displacement at the face: dx = DIPOLE_BENDING_CM_GEV * charge / |p|,
# so that beam-energy protons land on the ZP centre. Positive charges go to +x.
DIPOLE_BENDING_CM_GEV = ZP_OFFSET_CM * BEAM_ENERGY_PER_NUCLEON_GEV

# --- Electromagnetic showers (photons, electrons) ----------------------------------------
EM_MASS_LIMIT_MEV = 1.0  # photons (0) and electrons (0.511) shower electromagnetically
# Fibre light per GeV of EM energy: central photons give ~1 photon/GeV [facts; tuned].
EM_LIGHT_PER_GEV = 1.0
# Longitudinal profile dE/dt ~ t^(a-1) exp(-b t) (t in X0), b ~ 0.5 and
# t_max = (a - 1) / b = ln(E / E_c) - 0.5 for photons [PDG]. Only the depth of each
# sub-shower matters here (the shower axis is inclined), the 260 X0 contain it all.
EM_PROFILE_B = 0.5
EM_SHOWER_MAX_OFFSET = -0.5
# Photons convert after an exponential depth with mean 9/7 X0 [PDG].
PHOTON_CONVERSION_X0 = 9.0 / 7.0
# Two-component radial profile f(r) = p f_core + (1 - p) f_tail, each
# f(r) = 2 r R^2 / (r^2 + R^2)^2 [GFlash]. With these values ~90 % of the energy lies
# within one Moliere radius, the definition of R_M [PDG].
EM_CORE_FRACTION = 0.9
EM_CORE_RADIUS_MOLIERE = 0.2
EM_TAIL_RADIUS_MOLIERE = 1.0
# Sub-shower clustering of EM showers: 1 + Poisson(mean) clusters whose centres scatter
# around the axis (every *_SPREAD is the standard deviation per axis of a Gaussian scatter)
# [tuned: spiky responses; max pixel ~ 1/6 of the sum as in the real data].
EM_EXTRA_CLUSTERS_MEAN = 1.0
EM_CLUSTER_SPREAD_MOLIERE = 0.25

# --- Hadronic showers (neutrons, Lambdas, kaons, pions, protons) -------------------------
# Mean EM fraction 1 - f_em = (E / E0)^(m - 1) [Groom; PDG hadronic showers: E0 ~ 1 GeV,
# m ~ 0.83], fluctuating event by event: Beta distributed with this concentration
# (larger = smaller fluctuations) [tuned: ~30 % neutron resolution, facts].
GROOM_E0_GEV = 1.0
GROOM_EXPONENT_M = 0.83
EM_FRACTION_CONCENTRATION = 3.0
# Fibre light per GeV of non-EM hadronic energy. Cherenkov light comes from relativistic
# charged particles, so much less light per GeV than EM energy [tuned: 0.66-0.69 ph/GeV
# for neutrons, facts].
HADRONIC_LIGHT_PER_GEV = 0.42
# Longitudinal profile after the first interaction: shower maximum at
# t_max = 0.2 ln(E/GeV) + 0.7 interaction lengths and an exponential tail with
# lambda_att = lambda_I (E/GeV)^0.13 [PDG]; a Gamma profile with that mode whose tail scale
# is HADRONIC_TAIL_FRACTION * lambda_att reproduces the PDG 95 % containment length
# L95 = t_max + 2.5 lambda_att [tuned against PDG L95 at 100 GeV and 1 TeV].
HADRONIC_SHOWER_MAX_LOG = 0.2
HADRONIC_SHOWER_MAX_OFFSET = 0.7
HADRONIC_ATTENUATION_EXPONENT = 0.13
HADRONIC_TAIL_FRACTION = 0.5
# pi0 sub-showers: 1 + Poisson(n per e-fold of E) clusters, their centres scattered by
# ~ pT/E x lambda_I ~ 0.35 GeV / 10 GeV x 11.5 cm ~ 0.4 cm around the axis [PDG typical
# secondary pT; tuned to ~0.6 cm for spiky but compact cores].
HADRONIC_EM_CLUSTERS_PER_LOG_E = 0.8
HADRONIC_EM_CLUSTER_SPREAD_CM = 0.6
# Non-EM halo: 95 % of a hadron shower lies within ~1 lambda_I of the axis [PDG]; for the
# profile 2 r R^2 / (r^2 + R^2)^2 that is R = lambda_I / sqrt(19) = 2.6 cm, carried by
# 1 + Poisson(mean) halo clusters scattered around the axis [tuned].
HADRONIC_HALO_RADIUS_CM = ZN_INTERACTION_LENGTH_CM / 19.0**0.5
HADRONIC_HALO_EXTRA_CLUSTERS_MEAN = 2.0
HADRONIC_HALO_SPREAD_CM = 1.0
# Shares of the shower energy between clusters are Dirichlet with this shape (1 = flat:
# strong cluster-to-cluster fluctuations, spiky images) [tuned].
CLUSTER_SHARE_SHAPE = 1.0

# --- Particles missing the face: showers in upstream material ----------------------------
# A particle whose impact point lies a distance d < SPRAY_MAX_DISTANCE_CM outside the face
# showers upstream with probability P_edge * exp(-d / SPRAY_DECAY_CM); its secondaries
# enter the face from the nearest edge: clusters of radius SPRAY_RADIUS_CM around the
# nearest face point carrying SPRAY_LIGHT_PER_GEV * E * exp(-d / SPRAY_LIGHT_DECAY_CM)
# photons, part of which miss the face [tuned between the real data's 22 % empty responses
# and low photon sums (lower quartile 12) and the issue's "beam-energy protons give almost
# nothing": the default gun gives ~42 % empty responses].
SPRAY_PROBABILITY_AT_EDGE = 0.9
SPRAY_DECAY_CM = 30.0
SPRAY_MAX_DISTANCE_CM = 60.0
SPRAY_LIGHT_PER_GEV = 0.5
SPRAY_LIGHT_DECAY_CM = 4.0
SPRAY_RADIUS_CM = 2.0
SPRAY_EXTRA_CLUSTERS_MEAN = 1.0
SPRAY_CLUSTER_SPREAD_CM = 1.5

# --- Light collection --------------------------------------------------------------------
# A charged shower particle crossing a fibre yields a burst of trapped Cherenkov photons:
# the light is compound Poisson, a Poisson number of fibre crossings each giving a
# geometric number of photons with this mean (1 = plain Poisson) [tuned: sparse, spiky
# images; the real data have 96 % zero pixels].
PHOTONS_PER_FIBRE_CROSSING = 2.0


# --- Particle species (masses [PDG], charge in e) ----------------------------------------
@dataclass(frozen=True)
class Species:
    """One particle species of the gun: PDG code, name, mass (MeV), charge (e)."""

    pdg: int
    name: str
    mass_mev: float
    charge: float


SPECIES: dict[int, Species] = {
    s.pdg: s
    for s in (
        Species(22, "photon", 0.0, 0.0),
        Species(2112, "neutron", 939.56542, 0.0),
        Species(2212, "proton", 938.27209, 1.0),
        Species(3122, "Lambda", 1115.683, 0.0),
        Species(130, "K0L", 497.611, 0.0),
        Species(211, "pi+", 139.57039, 1.0),
        Species(-211, "pi-", 139.57039, -1.0),
        Species(321, "K+", 493.677, 1.0),
        Species(-321, "K-", 493.677, -1.0),
        Species(11, "electron", 0.51099895, -1.0),
        Species(-11, "positron", 0.51099895, 1.0),
    )
}

# --- Particle gun: statistics of the real dataset ----------------------------------------
# Species mix [facts, issue]: photons 61 %, neutrons 23 %, protons 5 %, Lambdas 3 %, the
# rest pions, kaons, electrons. The split of the rest is [tuned] so that the charge mean
# and standard deviation match the facts (0.063 / 0.257): ~2 % charged, the rest K0L.
GUN_SPECIES_FRACTIONS: tuple[tuple[int, float], ...] = (
    (22, 0.61), (2112, 0.23), (2212, 0.05), (3122, 0.03), (130, 0.06),
    (211, 0.008), (-211, 0.003), (321, 0.003), (-321, 0.001), (11, 0.003), (-11, 0.002),
)
# Energy: a soft log-normal (secondaries) plus a leading-particle log-normal near the
# beam energy per nucleon, truncated to [1, 7000] GeV [facts: range 1-7000 GeV, mean
# 1367, std 1260; issue: median ~550]. Fitted to those three moments [tuned; the gun gives
# ~580 / 1290 / 1310].
GUN_ENERGY_MIN_GEV = 1.0
GUN_ENERGY_MAX_GEV = 7000.0
GUN_SOFT_MEDIAN_GEV = 127.0
GUN_SOFT_LOG_SIGMA = 1.2
GUN_LEADING_FRACTION = 0.44
GUN_LEADING_MEDIAN_GEV = 2490.0
GUN_LEADING_LOG_SIGMA = 0.3
# Transverse momenta (GeV) and vertex (cm): means and standard deviations [facts].
GUN_PX_MEAN_STD_GEV = (0.0099, 0.2346)
GUN_PY_MEAN_STD_GEV = (0.0199, 0.2581)
GUN_VX_MEAN_STD_CM = (-7.8e-8, 4.15e-6)
GUN_VY_MEAN_STD_CM = (1.45e-7, 4.42e-6)
GUN_VZ_MEAN_STD_CM = (0.00107, 0.0245)
GUN_POSITIVE_SIDE_FRACTION = 0.5  # both ZNs equally [facts: Pz mean ~0 against std 1858]
# The real dataset keeps responses with at least this many photons [facts].
REAL_DATASET_MIN_PHOTONS = 10
