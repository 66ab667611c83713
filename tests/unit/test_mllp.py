"""MLLP framing (services/hl7/mllp.py): frames split and joined across reads, bytes outside
frames, oversized frames, abandoned frames; no socket."""

import random

from services.hl7.mllp import MESSAGE, OVERSIZED, STRAY, MllpDecoder, encode

A04 = b"MSH|^~\\&|HIS|H1|HCRM|H1|20260302093000||ADT^A04|C1|P|2.5\rPID|||M1^^^H1^MR\r"
A01 = A04.replace(b"A04", b"A01").replace(b"C1", b"C2")


def feed_all(decoder, chunks):
    frames = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    return frames


def test_encode_wraps_in_start_and_end_blocks():
    assert encode(b"MSH|x") == b"\x0bMSH|x\x1c\x0d"


def test_one_frame_in_one_read():
    frames = MllpDecoder().feed(encode(A04))
    assert [(f.kind, f.payload) for f in frames] == [(MESSAGE, A04)]


def test_frame_split_at_every_byte_boundary():
    data = encode(A04)
    for cut in range(1, len(data)):
        decoder = MllpDecoder()
        frames = feed_all(decoder, [data[:cut], data[cut:]])
        assert [f.payload for f in frames] == [A04], cut
        assert decoder.pending() == 0


def test_end_block_and_carriage_return_in_separate_reads():
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0b" + A04 + b"\x1c") == []
    assert decoder.pending() > 0
    assert [f.payload for f in decoder.feed(b"\x0d")] == [A04]


def test_byte_by_byte():
    decoder = MllpDecoder()
    data = encode(A04) + encode(A01)
    frames = feed_all(decoder, [data[i : i + 1] for i in range(len(data))])
    assert [f.payload for f in frames] == [A04, A01]


def test_several_frames_in_one_read_in_order():
    frames = MllpDecoder().feed(encode(A04) + encode(A01) + encode(A04))
    assert [f.payload for f in frames] == [A04, A01, A04]


def test_random_chunking_gives_the_same_frames():
    messages = [A04.replace(b"C1", f"C{i}".encode()) for i in range(50)]
    data = b"".join(encode(m) for m in messages)
    rng = random.Random(7)
    for _ in range(20):
        decoder, chunks, at = MllpDecoder(), [], 0
        while at < len(data):
            step = rng.randint(1, 300)
            chunks.append(data[at : at + step])
            at += step
        assert [f.payload for f in feed_all(decoder, chunks)] == messages


def test_bytes_outside_frames_are_reported_not_delivered():
    frames = MllpDecoder().feed(b"hello" + encode(A04) + b"junk" + encode(A01))
    assert [(f.kind, f.size) for f in frames] == [
        (STRAY, 5),
        (MESSAGE, len(A04)),
        (STRAY, 4),
        (MESSAGE, len(A01)),
    ]


def test_whitespace_between_frames_is_ignored_silently():
    frames = MllpDecoder().feed(encode(A04) + b"\r\n" + encode(A01) + b"\n")
    assert [f.kind for f in frames] == [MESSAGE, MESSAGE]


def test_end_block_without_carriage_return_still_ends_the_frame():
    frames = MllpDecoder().feed(b"\x0b" + A04 + b"\x1c" + encode(A01))
    assert [f.payload for f in frames] == [A04, A01]


def test_a_new_start_block_abandons_the_unfinished_frame():
    frames = MllpDecoder().feed(b"\x0bMSH|half a mess" + encode(A01))
    assert [(f.kind, f.reason) for f in frames] == [(STRAY, "abandoned"), (MESSAGE, "")]
    assert frames[1].payload == A01


def test_oversized_frame_keeps_its_head_and_bounded_memory():
    decoder = MllpDecoder(max_frame_bytes=1000, keep_of_oversized=200)
    big = A04 + b"NTE|" + b"x" * 50_000 + b"\r"
    chunks = [b"\x0b"] + [big[i : i + 700] for i in range(0, len(big), 700)] + [b"\x1c\x0d"]
    frames = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
        assert len(decoder._buffer) <= 1000 + 700  # never the whole frame
    assert [(f.kind, f.size) for f in frames] == [(OVERSIZED, len(big))]
    assert frames[0].payload == big[:200]
    # The connection stays usable: the next frame decodes normally.
    assert [f.payload for f in decoder.feed(encode(A01))] == [A01]


def test_oversized_frame_in_a_single_read():
    decoder = MllpDecoder(max_frame_bytes=len(A04) // 2, keep_of_oversized=20)
    frames = decoder.feed(encode(A04) + encode(b"MSH|ok"))
    assert [f.kind for f in frames] == [OVERSIZED, MESSAGE]
    assert frames[0].payload == A04[:20] and frames[0].size == len(A04)


def test_a_frame_of_exactly_the_limit_is_a_message():
    decoder = MllpDecoder(max_frame_bytes=len(A04))
    assert [f.kind for f in decoder.feed(encode(A04))] == [MESSAGE]
    decoder = MllpDecoder(max_frame_bytes=len(A04) - 1)
    assert [f.kind for f in decoder.feed(encode(A04))] == [OVERSIZED]


def test_pending_counts_an_unfinished_frame():
    decoder = MllpDecoder(max_frame_bytes=100, keep_of_oversized=10)
    assert decoder.pending() == 0
    decoder.feed(b"\x0b" + b"y" * 60)
    assert decoder.pending() == 60
    decoder.feed(b"y" * 100)
    assert decoder.pending() == 160  # discarded bytes of an oversized frame count too


# -- the client's file reading (services/hl7/client.py) --------------------------------------------
def test_a_file_of_messages_is_split_whatever_its_line_ends():
    from services.hl7.client import split_messages

    one, two = A04, A01
    for text in (
        one + two,  # consecutive MSH, \r
        one.replace(b"\r", b"\n") + b"\n" + two.replace(b"\r", b"\n"),  # \n, a blank line
        one.replace(b"\r", b"\r\n") + two.replace(b"\r", b"\r\n"),  # \r\n
        b"### origin line\n" + one + b"\n# comment\n\n\n" + two,  # comments
        encode(one) + encode(two),
    ):  # saved with MLLP framing
        assert split_messages(text) == [one, two], text


def test_an_ack_is_summarised_by_its_msa_and_err():
    from services.hl7.client import ack_summary, header_fields

    ack = (
        b"MSH|^~\\&|HCRM|HCRM|HIS|XHYY|20260302|||ACK^A04^ACK|X1|P|2.5\r"
        b"MSA|AE|C1|PID-3: no identifier of type MR\r"
        b"ERR||PID^1^3|101^Required field missing^HL70357|E\r"
    )
    assert ack_summary(ack) == ("AE", "PID-3: no identifier of type MR")
    assert ack_summary(b"MSH|^~\\&|A|B|C|D|1||ACK|X|P|2.5\rMSA|AA|C1\r") == ("AA", "")
    assert header_fields(A04) == ("C1", "ADT^A04", "utf-8")
