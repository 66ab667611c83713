"""The HL7 listener's configuration: the shared settings, the MLLP listener's, and the
mapping tables (docs/HL7.md). Like every service's, validated at start: a bad value
stops the process with a message naming the key.

The tables come from the `hl7:` section of the YAML file, or from the environment as JSON
(HL7_DEPARTMENTS='{"0101": "心内科"}', HL7_MRN_TYPE_CODES=MR,MEDREC).
"""

import codecs
import json

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from shared.config import BaseConfig, EnvList


class EnvDict(fields.Dict):
    """A mapping that may also come from the environment as a JSON object."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValidationError("Not a JSON object.") from None
        return super()._deserialize(value, attr, data, **kwargs)


def _table(**kwargs):
    return EnvDict(
        keys=fields.String(validate=validate.Length(min=1, max=64)),
        values=fields.String(validate=validate.Length(min=1, max=100)),
        **kwargs,
    )


class Hl7Config(BaseConfig):
    # -- the MLLP listener ------------------------------------------------------------------
    # 127.0.0.1 on a workstation; 0.0.0.0 in a container (docker-compose.yml, k8s).
    host = fields.String(load_default="127.0.0.1", validate=validate.Length(min=1))
    port = fields.Integer(load_default=2575, validate=validate.Range(min=1, max=65535))
    # docs/HL7.md: a frame over 1 MiB is answered AR (when its header is readable) or dropped.
    max_frame_bytes = fields.Integer(
        load_default=1024 * 1024, validate=validate.Range(min=1024, max=16 * 1024 * 1024)
    )
    # Connections may be idle for hours; one silent this long (a peer that vanished without
    # closing) is closed. 0 = never. TCP keepalive is on as well.
    idle_timeout_s = fields.Float(load_default=24 * 3600.0, validate=validate.Range(min=0))
    max_connections = fields.Integer(load_default=256, validate=validate.Range(min=1, max=10_000))
    # A message's text is removed this long after it was received (README.md § Data protection):
    # a year covers finding and replaying a mapping error and an interface audit; the events
    # derived from it live on in intake, under intake's own retention.
    raw_retention_days = fields.Float(load_default=366, validate=validate.Range(min=0.00001))

    # -- the mapping (services/hl7/mapping.py MappingSettings) -------------------------------
    # The `source` of every event the listener publishes (intake deduplicates per source).
    source = fields.String(load_default="hl7", validate=validate.Length(min=1, max=64))
    # The PID-3 repetition whose identifier type (CX-5) is one of these is the MRN.
    mrn_type_codes = EnvList(
        fields.String(validate=validate.Length(min=1, max=20)),
        load_default=["MR"],
        validate=validate.Length(min=1),
    )
    # Where set, the MRN repetition must also carry this assigning authority (CX-4).
    mrn_assigning_authority = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=64)
    )
    # PV1-3 point of care / PV1-10 hospital service code -> department name.
    departments = _table(load_default=dict)
    # The next tables are merged over the mapping's defaults (services/hl7/mapping.py): a code
    # may be added or overridden, none lost. PV1-36 discharge disposition code -> home,
    # transfer, against_advice, deceased or other (default: HL7 table 0112 and the codes 1-5,
    # 9 of China's inpatient front sheet).
    dispositions = _table(load_default=None, allow_none=True)
    # PV1-2 patient class -> outpatient, emergency or inpatient (default O R E I B).
    patient_classes = _table(load_default=None, allow_none=True)
    # PID-8 sex -> male, female, other or unknown (default HL7 table 0001, 1/2, 男/女).
    genders = _table(load_default=None, allow_none=True)
    # PV1-13 re-admission indicator values that make an A04 a return visit.
    readmission_codes = EnvList(
        fields.String(validate=validate.Length(min=1, max=20)), load_default=["R"]
    )
    # PV1-14 admit source code -> the contract's source_channel of a PatientVisited.
    patient_sources = _table(load_default=dict)
    # The character set of a message whose MSH-18 is empty.
    default_charset = fields.String(load_default="UTF-8")

    @validates("default_charset")
    def _known_charset(self, value, **kwargs):
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValidationError(f"Unknown character set {value!r}.") from None

    @validates_schema(skip_on_field_errors=True)
    def _mapping_accepts_the_tables(self, data, **kwargs):
        """The mapping checks its tables' values (a disposition that is not one of the
        contract's...): its refusal, at start, names the key."""
        try:
            mapping_settings(data)
        except ValueError as exc:
            key = str(exc).split(":", 1)[0]
            raise ValidationError(
                str(exc).split(": ", 1)[-1], key if key in self.fields else "_schema"
            ) from None

    @validates("host")
    def _no_scheme(self, value, **kwargs):
        if "/" in value:
            raise ValidationError("An address or a host name, without a scheme.")


MAPPING_KEYS = (
    "source",
    "timezone",
    "mrn_type_codes",
    "mrn_assigning_authority",
    "departments",
    "dispositions",
    "patient_classes",
    "genders",
    "readmission_codes",
    "patient_sources",
    "default_charset",
)


def mapping_settings(config):
    """The mapping's settings (services/hl7/mapping.py MappingSettings) from the config."""
    from services.hl7.mapping import MappingSettings

    return MappingSettings(**{key: config[key] for key in MAPPING_KEYS if key in config})
