"""The HL7 v2 listener (docs/HL7.md): ADT and SIU messages over MLLP or HTTP become the
inbound events of docs/EVENTS.md.

Pure half (no I/O): mapping.py (parse, to_events: message -> events; the library choice),
hl7_message.py (bytes -> python-hl7 tree by MSH-18, typed field access, times),
hl7_patient.py (PID -> patient object), ack.py (original-mode ACKs).
The process: service.py, store.py, config.py, mllp.py.
"""
