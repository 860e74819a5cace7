"""Fictional patients: the import's CSV file, and the fiction phone numbers they are given."""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

from faker import Faker

FICTION_PREFIXES: tuple[str, ...] = ("0199 00", "0261 91", "0353 01", "0465 71", "0536 49")
FICTION_E164_PREFIXES: tuple[str, ...] = (
    "+3319900",
    "+3326191",
    "+3335301",
    "+3346571",
    "+3353649",
)
INVALID_FICTION_PREFIX = "06 39 98"  # reserved for fiction, refused by phonenumbers

HEADER: tuple[str, ...] = (
    "numéro_adhérent",
    "nom",
    "prénom",
    "date_naissance",
    "sexe",
    "téléphone",
    "téléphone_2",
    "code_postal",
    "ville",
    "pathologies",
    "niveau_risque",
    "statut",
    "suspendu_jusqu_au",
    "consentement",
    "créneau",
    "infirmier_referent",
    "rpps",
    "médecin",
    "date_inscription",
)

# Real (postal code, commune) pairs, weighted towards big towns. Alsace-Moselle and
# Corsica are there on purpose: they have their own holidays or départements.
_METROPOLE: tuple[tuple[str, str, int], ...] = (
    ("75011", "Paris", 8),
    ("75015", "Paris", 8),
    ("75018", "Paris", 6),
    ("13001", "Marseille", 6),
    ("69003", "Lyon", 6),
    ("31000", "Toulouse", 5),
    ("06000", "Nice", 4),
    ("44000", "Nantes", 4),
    ("33000", "Bordeaux", 4),
    ("59000", "Lille", 4),
    ("35000", "Rennes", 3),
    ("34000", "Montpellier", 3),
    ("21000", "Dijon", 2),
    ("87000", "Limoges", 2),
    ("63000", "Clermont-Ferrand", 2),
    ("29200", "Brest", 2),
    ("76000", "Rouen", 2),
    ("51100", "Reims", 2),
    ("37000", "Tours", 2),
    ("45000", "Orléans", 2),
    ("80000", "Amiens", 2),
    ("25000", "Besançon", 2),
    ("86000", "Poitiers", 2),
    ("64000", "Pau", 2),
    ("66000", "Perpignan", 2),
    ("38000", "Grenoble", 3),
    ("42000", "Saint-Étienne", 2),
    ("49000", "Angers", 2),
    ("72000", "Le Mans", 2),
    ("14000", "Caen", 2),
    ("54000", "Nancy", 2),
    ("01000", "Bourg-en-Bresse", 2),
    ("02100", "Saint-Quentin", 1),
    ("03100", "Montluçon", 1),
    ("05000", "Gap", 1),
    ("07000", "Privas", 1),
    ("08000", "Charleville-Mézières", 1),
    ("09000", "Foix", 1),
    ("20000", "Ajaccio", 1),
    ("20200", "Bastia", 1),
    ("93200", "Saint-Denis", 3),
    ("94000", "Créteil", 3),
    ("92100", "Boulogne-Billancourt", 3),
    ("57000", "Metz", 1),
    ("57100", "Thionville", 1),
    ("67000", "Strasbourg", 2),
    ("68100", "Mulhouse", 1),
    ("68000", "Colmar", 1),
)
_OVERSEAS: tuple[tuple[str, str], ...] = (
    ("97110", "Pointe-à-Pitre"),
    ("97139", "Les Abymes"),
    ("97100", "Basse-Terre"),
    ("97200", "Fort-de-France"),
    ("97232", "Le Lamentin"),
    ("97300", "Cayenne"),
    ("97310", "Kourou"),
    ("97400", "Saint-Denis"),
    ("97410", "Saint-Pierre"),
    ("97460", "Saint-Paul"),
    ("97430", "Le Tampon"),
    ("97600", "Mamoudzou"),
    ("97615", "Pamandzi"),
    ("97133", "Saint-Barthélemy"),
    ("97150", "Saint-Martin"),
)
OVERSEAS_SHARE = 0.03

# Pathology weights (share of patients having it); a quarter of patients have two.
_PATHOLOGIES: tuple[tuple[str, float], ...] = (
    ("diabetes", 0.55),
    ("coronary", 0.20),
    ("heart_failure", 0.12),
    ("copd", 0.12),
    ("ckd", 0.10),
    ("asthma", 0.08),
)
_LABELS: dict[str, tuple[str, ...]] = {
    "diabetes": ("diabetes", "Diabète", "diabète", "DT2"),
    "coronary": ("coronary", "Coronarien", "maladie coronarienne"),
    "heart_failure": ("heart_failure", "Insuffisance cardiaque", "IC"),
    "copd": ("copd", "BPCO"),
    "ckd": ("ckd", "IRC", "Maladie rénale chronique"),
    "asthma": ("asthma", "Asthme"),
}
_SEPARATORS = (", ", " + ", "/", ";", " | ")
# Tier mix: heart failure is skewed high; the others are set so the whole is ~50/35/15.
_TIERS_HEART_FAILURE = (("low", 0.15), ("medium", 0.40), ("high", 0.45))
_TIERS_OTHER = (("low", 0.548), ("medium", 0.343), ("high", 0.109))
_TIER_WORDS = {
    "low": ("low", "faible", "1", "Faible"),
    "medium": ("medium", "modéré", "moyen", "2"),
    "high": ("high", "élevé", "fort", "3"),
}
_WINDOWS = (
    "14:00-17:00",
    "14h-17h",
    "9h-12h",
    "10h30-12h",
    "17h-19h",
    "09:00-11:30",
    "14h30-17h",
)
# How people type a number: national digits d = '0199001234'.
_PHONE_FORMATS = (
    "{0}{1} {2}{3} {4}{5} {6}{7} {8}{9}",
    "{0}{1}{2}{3}{4}{5}{6}{7}{8}{9}",
    "+33 {1} {2}{3} {4}{5} {6}{7} {8}{9}",
    "{0}{1}.{2}{3}.{4}{5}.{6}{7}.{8}{9}",
    "0033 {1} {2}{3} {4}{5} {6}{7} {8}{9}",
    "{1} {2}{3} {4}{5} {6}{7} {8}{9}",
    "{0}{1}-{2}{3}-{4}{5}-{6}{7}-{8}{9}",
    "+33{1}{2}{3}{4}{5}{6}{7}{8}{9}",
)
_PHONE_FORMAT_WEIGHTS = (40, 20, 10, 10, 3, 5, 5, 7)
FICTION_NUMBERS = 50_000
# share of patients enrolled with the one before them in the file, on the same landline at the same
# address (a couple both followed): the simulated lines let either answer (dialer/population.py)
SHARED_LANDLINE_SHARE = 0.02
REFERENCE_DATE = date(2025, 1, 6)


def fiction_number(index: int) -> str:
    """The index-th fiction number (0 ≤ index < 50,000), national digits."""
    prefix = FICTION_PREFIXES[index // 10_000].replace(" ", "")
    return f"{prefix}{index % 10_000:04d}"


def is_fiction_e164(number: str) -> bool:
    return number.startswith(FICTION_E164_PREFIXES) and len(number) == 12


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in weighted], weights=[w for _, w in weighted])[0]


def _pathologies(rng: random.Random) -> list[str]:
    count = 2 if rng.random() < 0.25 else 1
    pool = list(_PATHOLOGIES)
    chosen: list[str] = []
    for _ in range(count):
        code = _pick(rng, pool)
        chosen.append(code)
        pool = [p for p in pool if p[0] != code]
    return chosen


# of the patients outside the high tier with a référent, the share whose référent is a senior
SENIOR_CASELOAD_OUTSIDE_HIGH = 0.1


def generate_patients_csv(
    path: Path | str,
    n: int,
    seed: int = 0,
    nurse_codes: Sequence[str] = (),
    physicians: int | None = None,
    reference_date: date = REFERENCE_DATE,
    senior_codes: Sequence[str] = (),
    trained: Mapping[str, Sequence[str]] | None = None,
    hours: Mapping[str, float] | None = None,
) -> Path:
    """Write `n` fictional patients in the import format (';', UTF-8, French style).

    Phone numbers are unique while the 50,000 fiction numbers last, then reused,
    but for the landlines a couple shares (`SHARED_LANDLINE_SHARE`: a patient with
    the phone and address of the one before); member ids are always unique.
    `physicians` defaults to about one per 150 patients. Ages (30–90) are counted
    at `reference_date` so the file does not depend on the day it is generated.
    High-tier patients get their référent among `senior_codes` when given, as a
    programme would assign them, and the others mostly among the other nurses
    (`SENIOR_CASELOAD_OUTSIDE_HIGH`: a senior's caseload is her high-tier
    patients and a few who left the high tier); a patient with heart failure or COPD among
    the nurses `trained` for it (skill -> nurse codes, `trained_codes`) when
    some of those may take them: a référent who may not take her patient's
    calls is no référent at all. Among the nurses who may be a patient's référent, the one
    with the lightest caseload for her weekly `hours` (code -> hours, `weekly_hours`; equal
    when not given) gets the patient, as a programme shares its caseloads.
    """
    rng = random.Random(seed)
    fake = Faker("fr_FR")
    fake.seed_instance(seed)
    n_physicians = physicians if physicians is not None else max(1, round(n / 150))
    doctor_rpps = [f"10{x:09d}" for x in rng.sample(range(10**9), n_physicians)]
    doctors = [(rpps, f"Dr {fake.first_name()} {fake.last_name()}") for rpps in doctor_rpps]
    member_numbers = rng.sample(range(10**9), n)
    phone_order = rng.sample(range(FICTION_NUMBERS), min(n, FICTION_NUMBERS))
    metro_weights = [w for _, _, w in _METROPOLE]
    couples = random.Random(f"{seed}:couples")  # its own draws: the rest of the file stays as it was
    previous: tuple[str, str, str] | None = None  # (phone, postal code, city) a next patient may share
    caseloads = random.Random(f"{seed}:referents")  # its own draws: the rest of the file stays as it was
    seniors = frozenset(senior_codes)
    junior_codes = [c for c in nurse_codes if c not in seniors]
    trained_for = {skill: frozenset(codes) for skill, codes in (trained or {}).items()}
    caseload = _Caseloads(hours or {})

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=";", lineterminator="\r\n")
        writer.writerow(HEADER)
        for i in range(n):
            sex = "F" if rng.random() < 0.5 else "M"
            first = fake.first_name_female() if sex == "F" else fake.first_name_male()
            last = fake.last_name()
            if rng.random() < 0.3:
                last = last.upper()
            age_days = rng.randint(30 * 365 + 8, 90 * 365)
            birth = reference_date - timedelta(days=age_days)

            if rng.random() < OVERSEAS_SHARE:
                postal, city = rng.choice(_OVERSEAS)
            else:
                postal, city, _ = rng.choices(_METROPOLE, weights=metro_weights)[0]
                if postal.startswith("0") and rng.random() < 0.5:
                    postal = postal[1:]  # as Excel writes it

            index = phone_order[i] if i < len(phone_order) else rng.randrange(FICTION_NUMBERS)
            phone = _typed(rng, fiction_number(index))
            if previous is not None and couples.random() < SHARED_LANDLINE_SHARE:
                phone, postal, city = previous
                previous = None  # two on a line, never three
            else:
                previous = (phone, postal, city)
            phone_alt = ""
            if rng.random() < 0.1:
                phone_alt = _typed(rng, fiction_number(rng.randrange(FICTION_NUMBERS)))

            codes = _pathologies(rng)
            tiers = _TIERS_HEART_FAILURE if "heart_failure" in codes else _TIERS_OTHER
            tier = _pick(rng, tiers)
            labels = [rng.choice(_LABELS[c]) for c in codes]
            pathologies = rng.choice(_SEPARATORS).join(labels)

            roll = rng.random()
            status, suspended_until = "", ""
            if roll < 0.02:
                status = "suspendu"
                until = reference_date + timedelta(days=rng.randint(7, 90))
                suspended_until = until.strftime("%d/%m/%Y")
            elif roll < 0.03:
                status = "sorti"
            elif roll < 0.6:
                status = "inscrit"
            consent = "non" if rng.random() < 0.01 else rng.choice(("oui", "oui", "", "1"))
            window = rng.choice(_WINDOWS) if rng.random() < 0.15 else ""
            referents = senior_codes if tier == "high" and senior_codes else nurse_codes
            if tier != "high" and senior_codes and junior_codes:
                senior_kept = caseloads.random() < SENIOR_CASELOAD_OUTSIDE_HIGH
                referents = senior_codes if senior_kept else junior_codes
            for skill in ("heart_failure", "copd"):
                if skill in codes and skill in trained_for:
                    able = [c for c in referents if c in trained_for[skill]]
                    referents = able or referents
            nurse = caseload.assign(referents, tier) if referents and rng.random() < 0.6 else ""
            rpps, doctor = rng.choice(doctors)
            enrolled = reference_date - timedelta(days=rng.randint(0, 3 * 365))

            writer.writerow(
                (
                    f"{member_numbers[i]:09d}A",
                    last,
                    first,
                    birth.strftime("%d/%m/%Y"),
                    sex,
                    phone,
                    phone_alt,
                    postal,
                    city,
                    pathologies,
                    rng.choice(_TIER_WORDS[tier]),
                    status,
                    suspended_until,
                    consent,
                    window,
                    nurse,
                    rpps,
                    doctor,
                    enrolled.strftime("%d/%m/%Y"),
                )
            )
    return out


# a patient's weight in a référent's caseload: the minutes a wave's call takes in the default
# policy, so a nurse's share of a wave follows her hours
_CASELOAD_MINUTES = {"high": 25.0, "medium": 18.0, "low": 12.0}


class _Caseloads:
    """Référent caseloads as a programme fills them: each new patient to the nurse, among those
    who may be their référent, whose caseload is lightest for her hours. A random pick ignored
    hours and skills, and left a trained junior with three times the median load per hour."""

    def __init__(self, hours: Mapping[str, float]) -> None:
        self._hours = hours
        self._minutes: dict[str, float] = {}

    def assign(self, codes: Sequence[str], tier: str) -> str:
        def load(code: str) -> float:
            return self._minutes.get(code, 0.0) / max(self._hours.get(code, 1.0), 1e-9)

        chosen = min(codes, key=load)
        self._minutes[chosen] = self._minutes.get(chosen, 0.0) + _CASELOAD_MINUTES[tier]
        return chosen


def _typed(rng: random.Random, digits: str) -> str:
    fmt = rng.choices(_PHONE_FORMATS, weights=_PHONE_FORMAT_WEIGHTS)[0]
    return fmt.format(*digits)
