"""Deterministic query degradations ("degradation axes"): time stretch, pitch shift, speed change,
lossy codecs and a telephone channel, each named by a label such as 'pitch:-2' or 'mp3:32'."""
from __future__ import annotations

import io
import math
from fractions import Fraction

import numpy as np
import pedalboard
import scipy
import scipy.signal
import soundfile as sf
import torch
import torchaudio
import torchaudio.functional as AF

NONE = "none"
FACTOR_RANGE = (0.5, 2.0)
SEMITONE_RANGE = (-12.0, 12.0)
# MPEG-2 Layer III bitrates, the ones LAME encodes at constant bitrate at 16-24 kHz.
MP3_KBPS = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
OPUS_KBPS_RANGE = (6, 256)
PHONE_CODECS = ("gsm", "ulaw")
PHONE_BAND_HZ = (300.0, 3400.0)
PHONE_FILTER_ORDER = 8
OPUS_SAMPLE_RATES = (8000, 12000, 16000, 24000, 48000)
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Constant bitrates libsndfile offers per MPEG version, by the lowest sample rate of that version.
# libsndfile maps compression_level 0..1 linearly onto [max, min] of each row.
_MP3_KBPS_BY_RATE = (
    (32000, (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)),  # MPEG-1
    (16000, MP3_KBPS),  # MPEG-2
    (0, (8, 16, 24, 32, 40, 48, 56, 64)),  # MPEG-2.5: libsndfile caps it at 64 kbps
)
# LAME's encoder delay (576) plus mpg123's decoder delay (529). Decoded audio carries it whenever
# the MP3 frames are too small for LAME's gapless-playback header, i.e. at low bitrates.
LAME_DELAY = 1105
_OPUS_BPS_AT_LEVEL_1, _OPUS_BPS_SPAN = 6000, 250000  # libsndfile: bps = (1 - level) * 250000 + 6000

ALLOWED = ("'none', 'stretch:<tempo factor in [0.5, 2], not 1>', 'pitch:<semitones in [-12, 12], not 0>', "
           "'speed:<factor in [0.5, 2], not 1>', "
           f"'mp3:<kbps in {', '.join(map(str, MP3_KBPS))}>', "
           f"'opus:<kbps, an integer in [{OPUS_KBPS_RANGE[0]}, {OPUS_KBPS_RANGE[1]}]>', "
           "'phone:gsm', 'phone:ulaw'")

_NUMBER_CHECKS = {
    "stretch": lambda x: FACTOR_RANGE[0] <= x <= FACTOR_RANGE[1] and x != 1.0,
    "speed": lambda x: FACTOR_RANGE[0] <= x <= FACTOR_RANGE[1] and x != 1.0,
    "pitch": lambda x: SEMITONE_RANGE[0] <= x <= SEMITONE_RANGE[1] and x != 0.0,
    "mp3": lambda x: x in MP3_KBPS,
    "opus": lambda x: x.is_integer() and OPUS_KBPS_RANGE[0] <= x <= OPUS_KBPS_RANGE[1],
}
_SOURCE_KINDS = ("stretch", "pitch", "speed")


def _finite(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def parse_transform(value: object) -> str:
    """Canonical label of a configured transform ('Pitch:+1' -> 'pitch:1'); ValueError when not allowed."""
    if value is None:
        return NONE
    text = str(value).strip().lower()
    if text == NONE:
        return NONE
    kind, _, arg = (part.strip() for part in text.partition(":"))
    if kind == "phone" and arg in PHONE_CODECS:
        return f"phone:{arg}"
    x = _finite(arg)
    if kind in _NUMBER_CHECKS and x is not None and _NUMBER_CHECKS[kind](x):
        return f"{kind}:{x:g}"
    raise ValueError(f"transform {value!r} is not allowed; allowed: {ALLOWED}")


def _split(label: str) -> tuple[str, str]:
    kind, _, arg = parse_transform(label).partition(":")
    return kind, arg


def is_source_transform(label: str) -> bool:
    """True when the transform acts on the music itself (stretch, pitch, speed), before room and noise;
    False for 'none' and the channel transforms (codecs, phone), which act after the mix."""
    return _split(label)[0] in _SOURCE_KINDS


def source_samples(label: str, n: int) -> int:
    """How many source samples make ``n`` output samples: ceil(n * factor) for stretch and speed, else n."""
    kind, arg = _split(label)
    return math.ceil(n * float(arg)) if kind in ("stretch", "speed") else n


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """Exactly ``n`` samples: the end cropped or zero-padded."""
    out = np.zeros(n, np.float32)
    m = min(n, len(audio))
    out[:m] = audio[:m]
    return out


def _rubber_band(audio: np.ndarray, sample_rate: int, tempo: float = 1.0, semitones: float = 0.0) -> np.ndarray:
    """Rubber Band (offline, high quality): ``tempo`` > 1 plays faster, giving round(n / tempo) samples;
    the pitch moves by ``semitones``. Timing stays aligned at the start."""
    out = pedalboard.time_stretch(audio, sample_rate, stretch_factor=tempo, pitch_shift_in_semitones=semitones)
    return np.asarray(out, np.float32).reshape(-1)


def _speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Tempo and pitch changed together by resampling, like a record played ``factor`` times too fast.

    The factor is taken as the nearest fraction p/q with q <= 1000 (1.02 -> 51/50), so the resampling
    kernel stays small; the output has ceil(n * q / p) samples.
    """
    ratio = Fraction(factor).limit_denominator(1000)
    out = AF.resample(torch.from_numpy(audio), ratio.numerator, ratio.denominator)
    return out.numpy().astype(np.float32, copy=False)


def _mp3_bitrates(sample_rate: int) -> tuple[int, ...]:
    return next(kbps for lowest_rate, kbps in _MP3_KBPS_BY_RATE if sample_rate >= lowest_rate)


def _check_rate(codec: str, sample_rate: int, allowed: tuple[int, ...]) -> None:
    if sample_rate not in allowed:
        raise ValueError(f"{codec} cannot encode at {sample_rate} Hz; allowed sample rates: "
                         f"{', '.join(map(str, allowed))}")


def _encode(audio: np.ndarray, sample_rate: int, codec: str, kbps: int) -> bytes:
    """The encoded file, in memory.

    libsndfile takes no bitrate, only a compression level in [0, 1] that it maps linearly onto the codec's
    bitrate range and truncates to an integer; the level here lands half a unit above the requested rate so
    that the truncation gives it exactly. MP3 is LAME at constant bitrate; the file's rate is a few percent
    above it from the extra frames (LAME tag, encoder flush) and the ID3 tag: at 8 kHz mp3:32 gives 34.0 kbps
    over 4 s and 32.7 over 10 s. Opus is libopus' default unconstrained VBR aiming at the rate (libsndfile
    1.2.2 has no bitrate mode for Opus); with the Ogg framing opus:32 gives 34.9 kbps over 4 s and 33.8
    over 10 s at 8 kHz.
    """
    buffer = io.BytesIO()
    if codec == "mp3":
        _check_rate("mp3", sample_rate, MP3_SAMPLE_RATES)
        offered = _mp3_bitrates(sample_rate)
        if kbps not in offered:
            raise ValueError(f"mp3:{kbps} is not possible at {sample_rate} Hz; allowed kbps at this sample rate: "
                             f"{', '.join(map(str, offered))}")
        level = (offered[-1] - kbps - 0.5) / (offered[-1] - offered[0])
        sf.write(buffer, audio, sample_rate, format="MP3", subtype="MPEG_LAYER_III",
                 compression_level=min(max(level, 0.0), 1.0), bitrate_mode="CONSTANT")
    else:
        _check_rate("opus", sample_rate, OPUS_SAMPLE_RATES)
        level = 1.0 - (kbps * 1000 + 0.5 - _OPUS_BPS_AT_LEVEL_1) / _OPUS_BPS_SPAN
        sf.write(buffer, audio, sample_rate, format="OGG", subtype="OPUS", compression_level=min(max(level, 0.0), 1.0))
    return buffer.getvalue()


def _codec(audio: np.ndarray, sample_rate: int, codec: str, kbps: int) -> np.ndarray:
    """Encode and decode, time-aligned with the input and of its length.

    Opus needs no correction: libsndfile honours the Ogg pre-skip and end granule. MP3 decodes gapless
    (exact length, no delay) when LAME could write its info header; otherwise the decoded audio is
    longer and starts LAME_DELAY samples late, which is removed. Both measured by cross-correlation.
    The libsndfile/LAME/mpg123 chain also decodes MP3 at a gain of 0.95 (-0.45 dB), left as it is.
    """
    decoded, _ = sf.read(io.BytesIO(_encode(audio, sample_rate, codec, kbps)), dtype="float32")
    decoded = decoded.reshape(len(decoded), -1)[:, 0]
    if codec == "mp3" and len(decoded) != len(audio):
        decoded = decoded[LAME_DELAY:]
    return _fit(decoded, len(audio))


def _mu_law(audio: np.ndarray) -> np.ndarray:
    """8-bit mu-law (256 levels) encode and decode; the input is clipped to [-1, 1] as a real channel would."""
    x = torch.from_numpy(np.clip(audio, -1.0, 1.0))
    return AF.mu_law_decoding(AF.mu_law_encoding(x, 256), 256).numpy().astype(np.float32, copy=False)


def _phone(audio: np.ndarray, sample_rate: int, codec: str) -> np.ndarray:
    """A telephone channel: 300-3400 Hz band then GSM full rate or 8-bit mu-law.

    The band is an order-8 Butterworth band-pass run forwards and backwards (zero phase, so timing is kept):
    -6 dB at the band edges, about -27 dB at 250 Hz and -60 dB at 3600 Hz at 8 kHz.
    """
    if sample_rate / 2 <= PHONE_BAND_HZ[1]:
        raise ValueError(f"phone:{codec} needs a sample rate above {2 * PHONE_BAND_HZ[1]:g} Hz to keep the "
                         f"{PHONE_BAND_HZ[0]:g}-{PHONE_BAND_HZ[1]:g} Hz band; got {sample_rate} Hz")
    sos = scipy.signal.butter(PHONE_FILTER_ORDER, PHONE_BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")
    band = scipy.signal.sosfiltfilt(sos, audio).astype(np.float32)
    if codec == "ulaw":
        return _mu_law(band)
    # Fresh instance: the plugin keeps state between calls. It resamples to 8 kHz internally, latency-compensated.
    return _fit(np.asarray(pedalboard.GSMFullRateCompressor()(band, sample_rate), np.float32).reshape(-1), len(audio))


def apply_transform(label: str, audio: np.ndarray, sample_rate: int, n_out: int | None = None) -> np.ndarray:
    """Apply a transform to mono ``audio``; float32 mono out.

    With ``n_out`` the output is cropped or zero-padded at the end to exactly ``n_out`` samples. Without it,
    source transforms return the library's length (round(n / factor) for stretch, ceil(n / factor) for speed,
    n for pitch) and channel transforms return exactly ``len(audio)`` samples, time-aligned with the input.
    """
    kind, arg = _split(label)
    x = np.array(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"transform {label!r} needs mono audio (one dimension); got shape {x.shape}")
    if kind == "stretch":
        x = _rubber_band(x, sample_rate, tempo=float(arg))
    elif kind == "pitch":
        x = _rubber_band(x, sample_rate, semitones=float(arg))
    elif kind == "speed":
        x = _speed(x, float(arg))
    elif kind in ("mp3", "opus"):
        x = _codec(x, sample_rate, kind, int(float(arg)))
    elif kind == "phone":
        x = _phone(x, sample_rate, arg)
    return x if n_out is None else _fit(x, n_out)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that implement the transforms, to record next to the results."""
    return {"pedalboard": pedalboard.__version__, "soundfile": sf.__version__,
            "libsndfile": sf.__libsndfile_version__, "torchaudio": torchaudio.__version__,
            "scipy": scipy.__version__}
