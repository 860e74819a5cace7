"""Patient import end to end (invariant 7: bad input is named, good kept).

Every test that touches the database runs twice: on a fresh SQLite file and on a
fresh PostgreSQL database (the `db_url` fixture), since the import takes a
different write path on each (registry_pg._upsert_batch_pg on PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from campaign.clock import VirtualClock
from campaign.db import SessionFactory, make_engine, session_factory
from campaign.errors import ImportRowError
from campaign.imports import ImportSummary, import_patients
from campaign.model import AuditEvent, Nurse, Patient, Physician, pathologies_from_text
from campaign.policy import Policy, load_policy
from campaign.store.registry import get_patient_by_member_id
from campaign.synthetic import generate_nurses, generate_patients_csv, is_fiction_e164

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "samples" / "patients.sample.csv"
BROKEN = ROOT / "tests" / "data" / "patients-broken.csv"
NOW = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    SQLModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> SessionFactory:
    factory = session_factory(engine)
    with factory() as s:
        s.add_all(generate_nurses(6, seed=1))
        s.commit()
    return factory


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(NOW)


def _patients(sessions: SessionFactory) -> dict[str, dict[str, Any]]:
    with sessions() as s:
        return {p.member_id: p.model_dump() for p in s.exec(select(Patient)).all()}


PERSONAL_COLUMNS = {"member_id", "last_name", "first_name", "birth_date", "phone", "phone_alt"}


def _personal_values(path: Path, encoding: str = "utf-8-sig") -> set[str]:
    """The personal cells of the file (ids, names, numbers, birth dates)."""
    import csv

    from campaign.imports.reading import _HEADER_KEYS
    from campaign.imports.values import _key

    with path.open(encoding=encoding, newline="") as f:
        header, *rows = list(csv.reader(f, delimiter=";"))
    keep = [i for i, name in enumerate(header) if _HEADER_KEYS.get(_key(name)) in PERSONAL_COLUMNS]
    values = {row[i].strip() for row in rows for i in keep if i < len(row)}
    digits = {"".join(c for c in v if c.isdigit()) for v in values}
    return {v for v in values | digits if len(v) >= 4}


def _assert_no_personal_value(summary: ImportSummary, values: set[str]) -> None:
    for rejection in summary.rejected:
        text = str(rejection)
        for value in values:
            assert value not in text, f"{rejection.field} message quotes a value of the file"


def test_sample_imports_without_rejection(sessions, clock, policy) -> None:
    summary = import_patients(sessions, SAMPLE, clock, policy)

    assert summary.rejected == []
    assert (summary.total, summary.inserted, summary.updated, summary.unchanged) == (12, 12, 0, 0)
    assert summary.delimiter == ";"
    patients = _patients(sessions)
    reunion = patients["100200309"]
    assert (reunion["departement"], reunion["timezone"]) == ("974", "Indian/Reunion")
    bourg = patients["100200303"]
    assert (bourg["postal_code"], bourg["departement"]) == ("01000", "01")
    assert patients["100200308"]["departement"] == "2A"
    assert patients["100200302"]["pathologies"] == "|diabetes|heart_failure|"
    assert patients["100200302"]["tier"] == "high"
    assert patients["100200305"]["status"] == "suspended"
    assert patients["100200305"]["suspended_until"] == date(2030, 12, 31)
    assert patients["100200310"]["consent"] is False
    assert patients["100200303"]["status"] == "enrolled"  # blank: default
    assert all(p["updated_at"] == NOW for p in patients.values())
    with sessions() as s:
        physicians = s.exec(select(Physician)).all()
        assert len(physicians) == 7
        assert all(len(p.rpps) == 11 and p.name.startswith("Dr ") for p in physicians)
        audits = s.exec(select(AuditEvent).where(AuditEvent.action == "patients.import")).all()
    assert len(audits) == 1
    assert audits[0].actor == "import"
    assert json.loads(audits[0].detail) == {
        "total": 12,
        "inserted": 12,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
    }


def test_reimport_changes_nothing(sessions, clock, policy) -> None:
    import_patients(sessions, SAMPLE, clock, policy)
    before = _patients(sessions)
    clock.advance_to(NOW + timedelta(days=3))

    summary = import_patients(sessions, SAMPLE, clock, policy, actor="supervisor")

    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 0, 12)
    assert summary.rejected == []
    assert _patients(sessions) == before  # updated_at untouched too
    with sessions() as s:
        assert len(s.exec(select(Physician)).all()) == 7
        actors = [a.actor for a in s.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()]
    assert actors == ["import", "supervisor"]


def test_edited_row_counts_as_updated(sessions, clock, policy, tmp_path) -> None:
    import_patients(sessions, SAMPLE, clock, policy)
    text = SAMPLE.read_text(encoding="utf-8-sig")
    edited = text.replace("0261911235;01.99.00.12.35;44000;Nantes", "0261911299;;44000;Nantes")
    edited = edited.replace(
        "100200304;Thomas;André;23-09-1939;M;0033 4 65 71 12 37;;13001;Marseille;IRC;2",
        "100200304;Thomas;André;23-09-1939;M;0033 4 65 71 12 37;;13001;Marseille;IRC;élevé",
    )
    assert edited.count("\n") == text.count("\n") and edited != text
    path = tmp_path / "edited.csv"
    path.write_text(edited, encoding="utf-8")
    clock.advance_to(NOW + timedelta(days=1))

    summary = import_patients(sessions, path, clock, policy)

    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 2, 10)
    with sessions() as s:
        nantes = get_patient_by_member_id(s, "100200302")
        marseille = get_patient_by_member_id(s, "100200304")
        other = get_patient_by_member_id(s, "100200301")
    assert nantes is not None and marseille is not None and other is not None
    assert (nantes.phone, nantes.phone_alt) == ("+33261911299", None)
    assert marseille.tier == "high"
    assert nantes.updated_at == clock.now() and marseille.updated_at == clock.now()
    assert other.updated_at == NOW


def test_blank_status_keeps_an_opt_out(sessions, clock, policy) -> None:
    """A nurse recorded a withdrawal; a file that says nothing must not undo it."""
    import_patients(sessions, SAMPLE, clock, policy)
    with sessions() as s:
        patient = get_patient_by_member_id(s, "100200303")  # status blank in the sample
        assert patient is not None
        patient.status = "withdrawn"
        patient.consent = False
        s.add(patient)
        s.commit()

    summary = import_patients(sessions, SAMPLE, clock, policy)

    assert summary.updated == 0
    with sessions() as s:
        patient = get_patient_by_member_id(s, "100200303")
        assert patient is not None
        assert (patient.status, patient.consent) == ("withdrawn", False)


EXPECTED_BROKEN = {
    3: ("phone", "not a valid French phone number"),
    4: ("birth_date", "no such calendar date"),
    5: ("pathologies", "unknown pathology"),
    6: ("tier", "unknown risk tier"),
    7: ("member_id", "required value is missing"),
    8: ("birth_date", "not an adult"),
    10: ("member_id", "duplicate of line 2"),
}


def test_broken_file_keeps_good_rows_and_names_bad_ones(sessions, clock, policy) -> None:
    summary = import_patients(sessions, BROKEN, clock, policy)

    assert summary.total == 10
    assert summary.inserted == 3
    found = {r.line: (r.field, r.reason) for r in summary.rejected}
    assert set(found) == set(EXPECTED_BROKEN)
    for line, (field, reason) in EXPECTED_BROKEN.items():
        assert found[line][0] == field, line
        assert reason in found[line][1], line
    assert set(_patients(sessions)) == {"200300401", "200300408", "200300410"}
    _assert_no_personal_value(summary, _personal_values(BROKEN, "utf-8"))
    with sessions() as s:
        audit = s.exec(select(AuditEvent)).one()
    assert json.loads(audit.detail)["rejected"] == 7


def test_every_rejection_is_free_of_personal_values(sessions, clock, policy, tmp_path) -> None:
    rows = [
        "member_id;last_name;first_name;birth_date;sex;phone;phone_alt;postal_code;city;"
        "pathologies;tier;status;consent;preferred_window;referent_nurse;physician_rpps;"
        "physician_name;enrolled_on;suspended_until",
        "AB12;Dupont3;Jean;1950-01-01;F;0199001234;;75011;Paris;diabetes;low;;;;;;;;",
        "AB13;Durand;Jeanne;2099-01-01;F;0199001235;;75011;Paris;diabetes;low;;;;;;;;",
        "AB14;Durand;Jeanne;1950-01-01;X;0639981234;0639981299;75011;Paris;diabetes;low;;;;;;;;",
        "AB15;Durand;Jeanne;1950-01-01;F;0199001236;;98800;Nouméa;diabetes;low;;;;;;;;",
        "AB16;Durand;Jeanne;1950-01-01;F;0199001237;;7501;Paris;diabetes;low;zombie;peut-être;"
        "matin;N999;12345;Dr Who;2099-01-01;demain",
        "AB17;Durand;Jeanne;1950-01-01;F;0199001238;;ABCDE;Paris;diabetes;low;;;;;;;;",
        "AB18;Martin;Paul;1950-01-01;M;0199001239;;75011;Paris;diabetes;low;;;;;;Dr Who;;",
        "A!;Martin;Paul;1950-01-01;M;0199001240;;75011;Paris;diabetes;low;;;;;;;;",
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    summary = import_patients(sessions, path, clock, policy)

    assert summary.accepted == 0 and len(summary.rejected) == 8
    fields = {r.line: r.field for r in summary.rejected}
    assert fields == {
        2: "last_name",
        3: "birth_date",
        4: "sex",
        5: "postal_code",
        6: "status",
        7: "postal_code",
        8: "physician_rpps",
        9: "member_id",
    }
    line6 = next(r for r in summary.rejected if r.line == 6)
    for field in (
        "consent",
        "preferred_window",
        "referent_nurse",
        "physician_rpps",
        "enrolled_on",
        "suspended_until",
    ):
        assert field in line6.reason
    line4 = next(r for r in summary.rejected if r.line == 4)
    assert "phone, phone_alt" in line4.reason
    values = _personal_values(path) | {"+33639981234", "06 39 98", "2099", "1950", "Dr Who"}
    _assert_no_personal_value(summary, values)


def test_cp1252_semicolon_and_bom_utf8_comma(sessions, clock, policy, tmp_path) -> None:
    text = SAMPLE.read_text(encoding="utf-8-sig")
    cp1252 = tmp_path / "windows.csv"
    cp1252.write_bytes(text.encode("cp1252"))
    comma = tmp_path / "comma.csv"
    with (
        SAMPLE.open(encoding="utf-8-sig", newline="") as src,
        comma.open("w", encoding="utf-8-sig", newline="") as dst,
    ):
        import csv

        csv.writer(dst, delimiter=",").writerows(csv.reader(src, delimiter=";"))
    assert comma.read_bytes().startswith(b"\xef\xbb\xbf")

    first = import_patients(sessions, cp1252, clock, policy)
    assert (first.encoding, first.delimiter, first.inserted, first.rejected) == ("cp1252", ";", 12, [])
    imported = _patients(sessions)
    assert imported["100200303"]["first_name"] == "Marie-Hélène"
    second = import_patients(sessions, comma, clock, policy)
    assert (second.encoding, second.delimiter, second.unchanged, second.rejected) == (
        "utf-8-sig",
        ",",
        12,
        [],
    )
    assert _patients(sessions) == imported


def test_tab_separated_utf16_from_excel(sessions, clock, policy, tmp_path) -> None:
    text = SAMPLE.read_text(encoding="utf-8-sig").replace(";", "\t")
    path = tmp_path / "unicode.txt"
    path.write_bytes(text.encode("utf-16"))

    summary = import_patients(sessions, path, clock, policy)

    assert (summary.delimiter, summary.inserted, summary.rejected) == ("\t", 12, [])


def test_excel_sep_line_blank_lines_and_unknown_columns(sessions, clock, policy, tmp_path) -> None:
    path = tmp_path / "sep.csv"
    path.write_text(
        "sep=,\n"
        "member_id,last_name,first_name,birth_date,phone,postal_code,pathologies,tier,Remarque\n"
        "\n"
        "AB12,Dupont,Jean,1950-01-01,0199001234,75011,diabetes,low,x\n"
        ",,,,,,,,\n"
        "AB13,Dupont,Jeanne,1950-01-01,0199001299,75011,diabète,moyen,\n"
        "AB14,Dupont,Jo,1950-01-01,0639981234,75011,diabète,moyen,\n",
        encoding="utf-8",
    )
    summary = import_patients(sessions, path, clock, policy)

    assert (summary.total, summary.inserted) == (3, 2)
    assert [(r.line, r.field) for r in summary.rejected] == [(7, "phone")]
    assert summary.ignored_columns == ["Remarque"]


def test_unknown_nurse_code_is_a_row_error(sessions, clock, policy, tmp_path) -> None:
    path = tmp_path / "nurse.csv"
    path.write_text(
        "member_id;last_name;first_name;birth_date;phone;postal_code;pathologies;tier;"
        "referent_nurse\n"
        "AB12;Dupont;Jean;1950-01-01;0199001234;75011;diabetes;low;N999\n"
        "AB13;Dupont;Jeanne;1950-01-01;0199001299;75011;diabetes;low;n002\n",
        encoding="utf-8",
    )
    summary = import_patients(sessions, path, clock, policy)

    assert summary.inserted == 1
    assert [(r.line, r.field, r.reason) for r in summary.rejected] == [
        (2, "referent_nurse", "unknown nurse code")
    ]
    with sessions() as s:
        patient = get_patient_by_member_id(s, "AB13")
        nurse = s.exec(select(Nurse).where(Nurse.code == "N002")).one()
    assert patient is not None and patient.referent_nurse_id == nurse.id


@pytest.mark.parametrize(
    ("content", "field", "reason"),
    [
        (b"", "file", "empty"),
        (b"\n\n  \n", "file", "empty"),
        (b"member_id;last_name\nAB12;Dupont\n", "first_name", "required column missing"),
        (
            "member_id;nom;prénom;date_naissance;téléphone;cp;pathologies;tier\n".encode(),
            "file",
            "no data rows",
        ),
        (b"member_id;nom;nom de famille\n", "last_name", "two columns"),
        (b"\x81\x8d\x8f\x90\x9d\xff\xfe", "file", "not readable text"),
    ],
)
def test_file_level_problems(sessions, clock, policy, tmp_path, content, field, reason) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ImportRowError) as err:
        import_patients(sessions, path, clock, policy)
    assert (err.value.line, err.value.field) == (1, field)
    assert reason in err.value.reason


def test_missing_file(sessions, clock, policy, tmp_path) -> None:
    with pytest.raises(ImportRowError, match="file not found"):
        import_patients(sessions, tmp_path / "nope.csv", clock, policy)


def test_generated_patients_import_cleanly(sessions, clock, policy, tmp_path) -> None:
    path = generate_patients_csv(
        tmp_path / "gen.csv", 2000, seed=42, nurse_codes=[f"N{i:03d}" for i in range(1, 7)]
    )
    calls: list[tuple[int, int]] = []

    summary = import_patients(
        sessions,
        path,
        clock,
        policy,
        progress=lambda d, t: calls.append((d, t)),
        batch_size=500,
    )

    assert summary.rejected == []
    assert (summary.total, summary.inserted) == (2000, 2000)
    assert calls[-1] == (2000, 2000) and len(calls) >= 4
    assert all(d <= t for d, t in calls)
    with sessions() as s:
        patients = s.exec(select(Patient)).all()
    phones = [p.phone for p in patients]
    assert all(is_fiction_e164(n) for n in phones)
    assert all(is_fiction_e164(p.phone_alt) for p in patients if p.phone_alt)
    # unique but for the landlines couples share: two patients each, at one address
    homes: dict[str, set[tuple[str, str]]] = {}
    for p in patients:
        homes.setdefault(p.phone, set()).add((p.postal_code, p.city))
    shared = [n for n in homes if phones.count(n) > 1]
    assert 10 <= len(shared) <= 70 and len(set(phones)) == 2000 - len(shared)
    assert all(phones.count(n) == 2 and len(homes[n]) == 1 for n in shared)
    zones = {
        "971": "America/Guadeloupe",
        "972": "America/Martinique",
        "973": "America/Cayenne",
        "974": "Indian/Reunion",
        "976": "Indian/Mayotte",
        "977": "America/St_Barthelemy",
        "978": "America/Marigot",
    }
    # Saint-Barthélemy and Saint-Martin have Guadeloupe's postal range and their own calendars
    collectivities = {"97133": "977", "97150": "978"}
    overseas = [p for p in patients if p.postal_code.startswith("97")]
    assert 20 <= len(overseas) <= 110
    for p in overseas:
        assert p.departement == collectivities.get(p.postal_code, p.postal_code[:3])
        assert p.timezone == zones[p.departement]
    assert all(p.timezone == "Europe/Paris" for p in patients if p not in overseas)
    assert any(p.departement in {"57", "67", "68"} for p in patients)
    assert all(p.physician_id is not None for p in patients)

    tiers = [p.tier for p in patients]
    assert 0.42 < tiers.count("low") / 2000 < 0.58
    assert 0.10 < tiers.count("high") / 2000 < 0.20
    paths = [pathologies_from_text(p.pathologies) for p in patients]
    assert 0.50 < sum("diabetes" in c for c in paths) / 2000 < 0.66
    assert 0.20 < sum(len(c) == 2 for c in paths) / 2000 < 0.30
    hf_high = [p.tier == "high" for p, c in zip(patients, paths, strict=True) if "heart_failure" in c]
    assert sum(hf_high) / len(hf_high) > 0.3
    with_window = sum(p.preferred_start is not None for p in patients) / 2000
    assert 0.10 < with_window < 0.20
    with_nurse = sum(p.referent_nurse_id is not None for p in patients) / 2000
    assert 0.53 < with_nurse < 0.67

    again = import_patients(sessions, path, clock, policy)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2000)


def test_generation_is_deterministic(tmp_path) -> None:
    a = generate_patients_csv(tmp_path / "a.csv", 300, seed=5)
    b = generate_patients_csv(tmp_path / "b.csv", 300, seed=5)
    c = generate_patients_csv(tmp_path / "c.csv", 300, seed=6)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    nurses = [(x.code, x.display_name, x.level, x.skills, x.shifts) for x in generate_nurses(9, 3)]
    assert nurses == [(x.code, x.display_name, x.level, x.skills, x.shifts) for x in generate_nurses(9, 3)]


def test_beyond_fifty_thousand_member_ids_stay_unique(tmp_path) -> None:
    """Numbers may repeat past the fiction supply; member ids never."""
    import csv

    path = generate_patients_csv(tmp_path / "big.csv", 50_050, seed=1, physicians=3)
    with path.open(encoding="utf-8", newline="") as f:
        ids = [row[0] for row in csv.reader(f, delimiter=";")][1:]
    assert len(ids) == len(set(ids)) == 50_050


@pytest.mark.parametrize("n", [1, 2, 3, 10, 40])
def test_nurses_cover_every_need(n: int) -> None:
    nurses = generate_nurses(n, seed=n)
    assert [x.code for x in nurses] == [f"N{i:03d}" for i in range(1, n + 1)]
    seniors = [x for x in nurses if x.level == "senior"]
    assert seniors
    if n >= 2:
        assert any("heart_failure" in x.skills for x in seniors)
        assert any("copd" in x.skills for x in seniors)
        assert any(s["end"] >= "19:00" for x in nurses for s in x.shifts)
    if n >= 10:
        assert 0.2 <= len(seniors) / n <= 0.45
    hours = load_policy().calling_hours
    for nurse in nurses:
        assert nurse.timezone == "Europe/Paris"
        assert {s["weekday"] for s in nurse.shifts} <= {0, 1, 2, 3, 4, 5}
        assert all(s["start"] < s["end"] for s in nurse.shifts)
        # a roster staffs the calling hours only: every shift lies inside a window of its weekday
        for s in nurse.shifts:
            start, end = time.fromisoformat(s["start"]), time.fromisoformat(s["end"])
            windows = hours.by_weekday[s["weekday"]]
            assert any(w.start <= start and end <= w.end for w in windows), (nurse.code, s)


@pytest.mark.parametrize("n", [2, 10, 41])
def test_a_roster_staffed_for_the_evenings_has_the_seniors_asked_for_until_19h(n: int) -> None:
    """bench_outreach's roster: as many seniors as asked, two in three until 19:00 (their
    working-age high-tier patients answer in the evenings), inside calling hours like any other."""
    hours = load_policy().calling_hours
    for seniors in {1, n // 2, n}:
        nurses = generate_nurses(n, seed=n, seniors=seniors, senior_evenings=True)
        senior = [x for x in nurses if x.level == "senior"]
        assert len(senior) == seniors
        late = [x for x in senior if any(s["end"] == "19:00" for s in x.shifts)]
        assert len(late) == len(senior) - (len(senior) + 1) // 3  # late, mid, late, late, mid…
        for nurse in nurses:
            for s in nurse.shifts:
                start, end = time.fromisoformat(s["start"]), time.fromisoformat(s["end"])
                assert any(w.start <= start and end <= w.end for w in hours.by_weekday[s["weekday"]])


@pytest.mark.parametrize("n", [12, 52])
def test_seniors_are_trained_for_their_patients_and_referents_may_take_their_calls(tmp_path, n: int) -> None:
    """A third of high-tier patients have heart failure: every other senior is trained for it, whatever
    the draw (seed 0 drew 2 of 17 once, and 566 of those patients' tasks expired undialed). A patient
    with heart failure or COPD gets a référent trained for it, a high-tier one a trained senior, and
    most patients outside the high tier a junior."""
    import csv

    from campaign.imports.values import parse_pathologies, parse_tier
    from campaign.synthetic import trained_codes

    nurses = generate_nurses(n, seed=0)
    seniors = [x for x in nurses if x.level == "senior"]
    assert sum("heart_failure" in x.skills for x in seniors) >= len(seniors) // 2
    assert sum("copd" in x.skills for x in seniors) >= len(seniors) // 3
    skills = {x.code: set(x.skills) for x in nurses}
    path = generate_patients_csv(
        tmp_path / "p.csv",
        2_000,
        seed=0,
        nurse_codes=[x.code for x in nurses],
        senior_codes=[x.code for x in seniors],
        trained=trained_codes(nurses),
    )
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    hf = [
        r for r in rows if r["infirmier_referent"] and "heart_failure" in parse_pathologies(r["pathologies"])
    ]
    assert len(hf) > 150
    assert all("heart_failure" in skills[r["infirmier_referent"]] for r in hf)
    high = [r for r in rows if r["infirmier_referent"] and parse_tier(r["niveau_risque"]).value == "high"]
    assert {r["infirmier_referent"] for r in high} <= {x.code for x in seniors}
    # a senior's caseload is her high-tier patients, and a few others
    others = [r for r in rows if r["infirmier_referent"] and r not in high]
    with_senior = sum(r["infirmier_referent"] in {x.code for x in seniors} for r in others)
    assert 0.05 <= with_senior / len(others) <= 0.15


def test_generated_caseloads_follow_the_nurses_hours(tmp_path: Path) -> None:
    """Référents are shared by hours within each level, skills or not: a random pick left a trained
    junior with three times the median caseload per weekly hour, and her patients with others."""
    import csv
    import statistics

    from campaign.imports.values import parse_tier
    from campaign.synthetic import trained_codes, weekly_hours

    nurses = generate_nurses(14, seed=1, seniors=5, senior_evenings=True)
    hours = weekly_hours(nurses)
    assert len(set(hours.values())) > 1  # part-time and Saturday shifts: the hours differ
    path = generate_patients_csv(
        tmp_path / "p.csv",
        3_000,
        seed=1,
        nurse_codes=[x.code for x in nurses],
        senior_codes=[x.code for x in nurses if x.level == "senior"],
        trained=trained_codes(nurses),
        hours=hours,
    )
    minutes = {"high": 25, "medium": 18, "low": 12}
    load = dict.fromkeys(hours, 0.0)
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            if row["infirmier_referent"]:
                load[row["infirmier_referent"]] += minutes[parse_tier(row["niveau_risque"]).value]
    for level in ("senior", "junior"):
        per_hour = [load[x.code] / hours[x.code] for x in nurses if x.level == level]
        assert max(per_hour) <= 1.1 * statistics.median(per_hour), (level, per_hour)
        assert min(per_hour) >= 0.9 * statistics.median(per_hour), (level, per_hour)


def test_nurses_can_be_saved(engine: Engine) -> None:
    with Session(engine) as s:
        s.add_all(generate_nurses(4, seed=2))
        s.commit()
        assert len(s.exec(select(Nurse)).all()) == 4


def test_interrupted_import_keeps_committed_batches_and_is_audited(sessions, clock, policy, tmp_path) -> None:
    """Ctrl-C during the progress bar: the batches already committed are real, and in the trail."""
    path = generate_patients_csv(tmp_path / "gen.csv", 30, seed=4)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_patients(sessions, path, clock, policy, progress=interrupt, batch_size=10)
    assert len(_patients(sessions)) == 10
    with sessions() as s:
        audit = s.exec(select(AuditEvent)).one()
    assert json.loads(audit.detail)["interrupted"] == "KeyboardInterrupt"
    assert json.loads(audit.detail)["inserted"] == 10
