"""Real inputs for the real-model fixtures: spoken words and rendered text,
made on this machine by Debian's tools, so the published models see the kind
of data they were trained on (a VAD that only ever saw random numbers, or an
OCR model fed noise, exercises few of its branches and none of its meaning).

    speech(text, rate=16000)   espeak-ng's voice saying TEXT, float32 in [-1, 1]
    text_image(text, height)   black text on white, rendered with DejaVu Sans, HxWx3 uint8
"""
import os
import subprocess
import tempfile
import wave

import numpy as np

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def speech(text, rate=16000):
    """TEXT spoken by espeak-ng (22,050 Hz mono 16-bit), resampled to RATE."""
    from scipy.signal import resample_poly
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "speech.wav")
        subprocess.run(["espeak-ng", "-v", "en", "-s", "140", "-w", path, text], check=True,
                       capture_output=True, timeout=60)
        with wave.open(path) as w:
            source_rate = w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    audio = samples.astype(np.float64) / 32768.0
    divisor = np.gcd(rate, source_rate)
    audio = resample_poly(audio, rate // divisor, source_rate // divisor)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def text_image(text, height, width=None, upside_down=False):
    """TEXT rendered in black on white, filling about 70% of HEIGHT; the
    width is the text's own plus margins unless WIDTH is given."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.truetype(FONT, int(height * 0.7))
    left, top, right, bottom = font.getbbox(text)
    natural = right - left + height // 2
    image = Image.new("RGB", (width or natural, height), "white")
    ImageDraw.Draw(image).text(((height // 4) - left, (height - (bottom - top)) // 2 - top),
                               text, fill="black", font=font)
    if upside_down:
        image = image.rotate(180)
    return np.asarray(image, dtype=np.uint8)
