"""Domain objects shared by ingest, deid, store and llm. Frozen; no protobuf here."""
from __future__ import annotations

from typing import Any

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PersonName:
    family: str = ""
    given: str = ""
    middle: str = ""
    prefix: str = ""  # "Dr", "Mr"; used only to build text variants

    def is_empty(self) -> bool:
        return not (self.family or self.given)


@dataclass(frozen=True)
class KnownIdentifiers:
    """Identifiers the message itself declares, used to seed the scrubber.

    `patient_key` is the stable identity used to key surrogates and the date shift
    (assigning authority + MRN where present); it is never shown to the model."""

    patient_key: str = ""
    patient_names: tuple[PersonName, ...] = ()
    other_names: tuple[PersonName, ...] = ()  # relatives, clinicians
    record_numbers: tuple[str, ...] = ()  # MRN, account, visit, SSN, licence
    dates: tuple[str, ...] = ()  # as written in the message, e.g. birth date "19660419"
    addresses: tuple[str, ...] = ()  # street lines and cities
    postal_codes: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    birth_date: str = ""  # YYYYMMDD[...] as in PID-7

    def merged(self, other: KnownIdentifiers) -> KnownIdentifiers:
        def u(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(dict.fromkeys((*a, *b)))

        return KnownIdentifiers(
            patient_key=self.patient_key or other.patient_key,
            patient_names=u(self.patient_names, other.patient_names),
            other_names=u(self.other_names, other.other_names),
            record_numbers=u(self.record_numbers, other.record_numbers),
            dates=u(self.dates, other.dates),
            addresses=u(self.addresses, other.addresses),
            postal_codes=u(self.postal_codes, other.postal_codes),
            phones=u(self.phones, other.phones),
            emails=u(self.emails, other.emails),
            birth_date=self.birth_date or other.birth_date,
        )


@dataclass(frozen=True)
class MessageHeader:
    """What the MSH says, needed to acknowledge and to de-duplicate."""

    field_sep: str
    encoding_chars: str
    sending_app: str
    sending_facility: str
    receiving_app: str
    receiving_facility: str
    message_type: str  # "ORU^R01"
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str = ""
    app_ack_type: str = ""
    charset: str = ""


@dataclass(frozen=True)
class Document:
    """A report as ingest hands it on: original text plus declared identifiers."""

    kind: str  # "hl7:ORU^R01"
    source: str
    text: str
    known: KnownIdentifiers
    header: MessageHeader | None = None
    replaces_control_id: str = ""  # MDM replacement (TXA-13 / parent) when present
    document_ref: str = ""  # filler/placer order or TXA-12 unique document number
    result_status: str = ""  # preliminary | final | corrected | cancelled | "" (not stated)
    # For the worklist: the exam or procedure as ordered (OBR-4, a DICOM study description), the
    # modality or service section (OBR-24), and the order's priority (stat, asap, routine...).
    exam: str = ""
    modality: str = ""
    priority: str = ""


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Deidentified:
    text: str
    spans: tuple[Span, ...]  # in the ORIGINAL text's offsets
    surrogates: dict[str, str] = field(default_factory=dict)  # surrogate -> original
