"""Which languages each OCR model reads, and the writing systems (scripts) of a line of text.

Light (standard library only): the contract imports it for the gateway's 422
``unsupported_language``; the engines use :func:`foreign_line` to drop lines written only in
scripts the job did not ask for (PP-OCR reads an arrow icon as ``穴``, a Hangul sign as Han
look-alikes).

A recogniser *reads* a language when its character table holds every letter of that
language's alphabet (:data:`ALPHABETS`); ``tests/test_ocr_models.py`` recomputes
:data:`RAPIDOCR_LANGUAGES` from the provisioned models' tables. Tesseract reads a language
when its trained data (Debian's ``tesseract-ocr-<code>`` package) is installed;
:data:`TESSERACT_CODES` maps ISO 639-1 to Tesseract's codes (ISO 639-2/T plus script,
``tessdoc/Data-Files-in-different-versions.md``).
"""

from __future__ import annotations

import unicodedata

#: Letters each language's orthography needs beyond ASCII (lower case; the upper case of each
#: is required too), or for non-Latin scripts a sample of its most frequent letters. Sources:
#: the languages' standard alphabets (Unicode CLDR exemplar characters, main set).
ALPHABETS: dict[str, str] = {
    "en": "",
    "fr": "àâæçéèêëîïôœùûüÿ",
    "de": "äöüß",
    "es": "áéíñóúü",
    "it": "àèéìòóù",
    "pt": "áâãàçéêíóôõú",
    "nl": "éëïöü",
    "pl": "ąćęłńóśźż",
    "tr": "çğıöşü",
    "vi": "ăâđêôơưàảãáạ",
    "ru": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "el": "αβγδεζηθικλμνξοπρστυφχψω",
    "zh": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会",
    "ja": "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテト",
    "ko": "가나다라마바사아자차카타파하서울평양",
    "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "hi": "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह",
    "th": "กขคฆงจฉชซญดตถทธนบปผพฟภมยรลวศษสหอฮ",
}

#: Scripts (Unicode character-name prefixes) each language is written in.
SCRIPTS: dict[str, tuple[str, ...]] = {
    **{lang: ("LATIN",) for lang in ("en", "fr", "de", "es", "it", "pt", "nl", "pl", "tr", "vi")},
    "ru": ("CYRILLIC",),
    "el": ("GREEK",),
    "zh": ("CJK",),
    "ja": ("CJK", "HIRAGANA", "KATAKANA"),
    "ko": ("HANGUL", "CJK"),
    "ar": ("ARABIC",),
    "hi": ("DEVANAGARI",),
    "th": ("THAI",),
}

#: Aliases a request may use for a language (RapidOCR's own code for Chinese).
ALIASES: dict[str, str] = {"ch": "zh"}

#: ISO 639-1 -> Tesseract trained data (Debian package ``tesseract-ocr-<code with - for _>``).
TESSERACT_CODES: dict[str, str] = {
    "en": "eng",
    "fr": "fra",
    "de": "deu",
    "es": "spa",
    "it": "ita",
    "pt": "por",
    "nl": "nld",
    "pl": "pol",
    "tr": "tur",
    "vi": "vie",
    "ru": "rus",
    "el": "ell",
    "zh": "chi_sim",
    "ja": "jpn",
    "ko": "kor",
    "ar": "ara",
    "hi": "hin",
    "th": "tha",
}

#: The trained data the OCR image installs (Dockerfile.cpu ``TESSERACT_LANGS``) and
#: ``scripts/install-system-deps.sh`` installs natively: what the gateway may accept.
TESSERACT_LANGUAGES: tuple[str, ...] = (
    "en", "fr", "de", "es", "it", "pt", "nl", "ru", "zh", "ja", "ko", "ar", "hi", "th",
)  # fmt: skip

#: What each RapidOCR model reads (computed from its character table, see module docstring).
RAPIDOCR_LANGUAGES: dict[str, tuple[str, ...]] = {
    "pp-ocrv4": ("en", "zh"),
    "pp-ocrv5-mobile": ("en", "de", "el", "zh", "ja"),
    "pp-ocrv6-small": ("en", "fr", "de", "es", "it", "pt", "nl", "pl", "tr", "el", "zh", "ja"),
    "pp-ocrv6-tiny": ("en", "fr", "de", "es", "it", "pt", "nl", "pl", "tr", "el", "zh"),
}


def reads(charset: set[str], language: str) -> bool:
    """Whether a recogniser whose character table is ``charset`` holds every letter of
    ``language`` (:data:`ALPHABETS`), upper case included. Raises KeyError for an unknown one."""
    letters = ALPHABETS[language]
    needed = set(letters) | {c.upper() for c in letters if len(c.upper()) == 1}
    if language in SCRIPTS and SCRIPTS[language] == ("LATIN",):
        needed |= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return needed <= charset


def canonical(language: str) -> str:
    """``ch`` -> ``zh``; other codes unchanged."""
    return ALIASES.get(language, language)


def script_of(char: str) -> str | None:
    """The script of one letter (``LATIN``, ``CJK``, ``HANGUL``...), None for a non-letter."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    if name.startswith("CJK") or "IDEOGRAPH" in name:
        return "CJK"
    return name.split(" ", 1)[0] if name else None


def foreign_line(text: str, languages: list[str]) -> bool:
    """True when ``text`` has letters and none is in a script of ``languages`` (a line
    written only in scripts the job did not ask for). Digits and punctuation alone are kept."""
    allowed = {s for lang in languages for s in SCRIPTS.get(canonical(lang), ())}
    if not allowed:
        return False
    scripts = {s for s in map(script_of, text) if s is not None}
    return bool(scripts) and not (scripts & allowed)
