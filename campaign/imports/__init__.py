"""Patient import from the CSV files French office software writes.

Supervisors export registries from Excel, LibreOffice or the insurer's tools,
so the reader is lenient about form and strict about content: the delimiter
is sniffed among ``;``, ``,`` and TAB (an Excel ``sep=;`` first line is
honoured); the encoding is UTF-8 with or without BOM (UTF-16 with BOM, as
Excel's "Unicode text" writes it, too), falling back to Windows-1252; headers
match case- and accent-insensitively, in English or French. Every field is
validated; a bad row is rejected with its line, field and a reason that never
quotes the personal value, and never stops the good rows (invariant 7).

Columns (header in English, or any of the French aliases in brackets):

=================  =====================================  ==================================
column             French aliases                         content
=================  =====================================  ==================================
member_id          numéro d'adhérent, n° adhérent,        required; 4–32 letters or digits,
                   adhérent                               stored upper case without spaces;
                                                          the key of the upsert
last_name          nom, nom de famille                    required; a name, at most 100
                                                          characters
first_name         prénom                                 required; as last_name
birth_date         date_naissance, date de naissance      required; 1956-03-12, 12/03/1956,
                                                          12-03-1956 or 12.03.1956; adult
                                                          (18+), not in the future
sex                sexe                                   F, M (also H, femme, homme, 1, 2)
                                                          or blank
phone              téléphone, tél, portable               required; any usual French way of
                                                          writing it; stored as E.164
phone_alt          téléphone_2, tél 2, autre téléphone    optional second number
postal_code        code_postal, cp                        required; 5 digits (a 4-digit code
                                                          whose leading zero Excel dropped
                                                          is accepted); 971–976 overseas
city               ville, commune                         optional; at most 100 characters
pathologies        pathologie, maladies                   required, one or more separated by
                                                          , ; | + or /: codes diabetes,
                                                          heart_failure, ckd, coronary, copd,
                                                          asthma or French labels (diabète,
                                                          insuffisance cardiaque, IRC /
                                                          maladie rénale chronique, BPCO,
                                                          asthme, coronarien…)
tier               niveau_risque, risque                  required; low/medium/high,
                                                          faible/modéré/moyen/élevé/fort,
                                                          1/2/3
status             statut                                 enrolled/suspended/withdrawn/
                                                          deceased or inscrit/suspendu/
                                                          sorti/décédé; blank: enrolled for a
                                                          new patient, unchanged for a known
                                                          one
suspended_until    suspendu_jusqu_au, fin_suspension      optional date
consent            consentement                           oui/non/yes/no/1/0/true/false;
                                                          blank: yes for a new patient,
                                                          unchanged for a known one
preferred_window   créneau, créneau préféré,              optional, patient's local time:
                   plage horaire                          14:00-17:00, 14h-17h, 14h30-17h
referent_nurse     infirmier_referent, infirmière         optional nurse code; must be a
                   référente, référent                    known nurse
physician_rpps     rpps, rpps médecin                     optional; 11 digits; the physician
                                                          is created if unknown
physician_name     médecin, médecin traitant              optional; at most 200 characters;
                                                          needs physician_rpps
enrolled_on        date_inscription                       optional date, not in the future
=================  =====================================  ==================================

Unknown columns are ignored and listed in the summary. A column absent from the
file leaves that attribute of known patients unchanged.

Hostile files cost their bad rows only. A free-text value (names, city,
physician) that a spreadsheet would run as a formula (it starts with = + - or @)
is refused: carecall's lists are opened in spreadsheets. So is a NUL, a quote
left open at the end of its line (rows never span lines: the lines after it are
read as usual), a value over the csv module's 131,072 characters, and a new
member id equal to a known one (stored, or earlier in the file) once leading
zeros are stripped, unless the supervisor accepts similar ids.

The package, along its seams: `reading` (encoding, delimiter, `sep=` line,
header, records), `phones` (numbers to E.164), `values` (one parser per value,
and their memoised forms), `rows` (a row to a PatientRecord or a rejection) and
`importer` (import_patients: batches, summary, audit). The storage is
campaign.store.registry.
"""

from campaign.imports.importer import ImportSummary, Progress, import_patients
from campaign.imports.phones import normalise_phone
from campaign.imports.reading import ALIASES, COLUMNS, REQUIRED_COLUMNS
from campaign.imports.values import parse_date, parse_pathologies, parse_tier, parse_window
from campaign.store.registry import RowRejection

__all__ = [
    "ALIASES",
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "ImportSummary",
    "Progress",
    "RowRejection",
    "import_patients",
    "normalise_phone",
    "parse_date",
    "parse_pathologies",
    "parse_tier",
    "parse_window",
]
