#!/usr/bin/env python3
"""Test strings for the CLIP tokenizer parity test (tests/tests/clip_tokenizer.rs).

Prints a JSON object (ASCII-escaped) to stdout: `{"cases": [...], "mojibake": [...]}`.
The lists are fixed by a seeded generator, so a failure reproduces. It covers what a search box receives
and what open_clip's cleanup (ftfy, html.unescape, whitespace, lower) touches:
plain English, punctuation and numbers, many scripts, emoji sequences, composed
and decomposed accents, HTML entities (every HTML5 name, numeric, invalid and
double-escaped), odd whitespace and control characters, curly quotes, ligatures,
full- and half-width forms, empty and blank strings, texts far over 77 tokens,
and sweeps through Unicode blocks.

"mojibake" holds the strings whose cleanup depends on ftfy's `fix_encoding`
(mojibake repair, such as "cafÃ©" -> "café"), which the Rust cleanup does not
replicate: a few written on purpose, and any generated case for which
`ftfy.fix_text(s) != ftfy.fix_text(s, fix_encoding=False)`. The test reports them
without asserting. Lone surrogates are left out: a Rust string cannot hold them.

    .venv/bin/python tools/reference/tokenizer_cases.py > cases.json
"""

import html.entities
import json
import random
import sys
import unicodedata

RNG = random.Random(20261123)

NOUNS = ("cat dog car house tree mountain river beach city street person woman man child bird horse boat "
         "airplane bicycle pizza cake coffee book phone laptop guitar flower sunset forest bridge castle "
         "robot dragon painting sculpture kitchen garden snow rain desert ocean").split()
ADJECTIVES = ("red blue green small large old new beautiful dark bright happy sad wooden metallic shiny "
              "vintage modern cozy foggy snowy crowded empty abstract realistic blurry").split()
TEMPLATES = [
    "a photo of a {}.", "a {a} {n}", "A PHOTO OF THE {N}", "an image of {a} {n}s", "{n}", "{A} {N}!",
    "a painting of a {a} {n} next to a {n2}", "itap of a {n}.", "a close-up photo of the {n}.",
    "there's a {n} in the {n2}", "the {n} isn't {a}, it's {a2}", "a black and white photo of my {n}",
    "{n}s and {n2}s", "a {n} on a {a} day", "What's this {n}?", "I'm looking for a {a} {n} you'd like",
]

SCRIPTS = [
    "東京の夜景と桜の花", "我喜欢吃北京烤鸭和饺子", "한국어 텍스트 토크나이저 테스트", "ひらがなとカタカナのテスト",
    "مرحبا بالعالم، هذه صورة قطة", "שלום עולם, זו תמונה של כלב", "Привет, мир! Это фотография кошки",
    "ΟΔΟΣ και ΣΟΦΟΣ: Καλημέρα κόσμε", "नमस्ते दुनिया, यह एक बिल्ली की तस्वीर है", "স্বাগতম বাংলা লিপি",
    "வணக்கம் உலகம்", "สวัสดีชาวโลก นี่คือรูปแมว", "ສະບາຍດີ", "გამარჯობა მსოფლიო", "Բարև աշխարհ",
    "ሰላም ለዓለም", "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ", "བཀྲ་ཤིས་བདེ་ལེགས།", "សួស្តី​ពិភពលោក", "Tiếng Việt có dấu: Xin chào thế giới",
    "Ελληνικά ΆΈΉΊΌΎΏ ΐΰ", "Українська мова: Ґґ Єє Іі Її", "Türkçe: İstanbul IĞDIR ışık", "Straße STRASSE ẞ",
    "Ǆemal ǅemal ǆemal", "Ōtautahi Māori", "Ꭰ Ꭱ Ꭲ Cherokee", "ᚠᚢᚦᚨᚱᚲ runes", "𝐁𝐨𝐥𝐝 𝑰𝒕𝒂𝒍𝒊𝒄 𝔉𝔯𝔞𝔨𝔱𝔲𝔯",
    "ⅠⅡⅢⅣ ⅰⅱⅲ ①②③ ⁵₆ ½ ¾", "١٢٣ ٤٥٦ ۷۸۹ ०१२ ๑๒๓", "ℌ ℍ ℎ ℏ ℓ № ™ Ω K Å",
]

EMOJI = [
    "😀", "🐱", "🐶", "🍕", "🚀", "❤️", "👍🏽", "👋🏿", "🧑🏻‍💻", "👨‍👩‍👧‍👦", "👩‍❤️‍💋‍👨", "🏳️‍🌈", "🏴‍☠️",
    "🇺🇸", "🇯🇵", "🇩🇪", "1️⃣", "#️⃣", "©️", "☺︎", "✌🏼", "🤷‍♀️", "🧔🏾‍♂️", "👁️‍🗨️", "🫠", "🥲",
    "😂😂😂", "🔥🔥", "⭐", "☕", "♥", "✨", "🌈", "🦄", "🐈‍⬛", "❤️‍🔥",
]

ACCENTED = ["café", "naïve", "résumé", "Ångström", "São Paulo", "Zürich", "façade", "jalapeño", "Øresund",
            "Łódź", "Dvořák", "Škoda", "crème brûlée", "piñata", "Eyjafjallajökull", "ÉCOLE", "ÇA VA"]

WHITESPACE = ["\t", "\n", "\r\n", "\r", "\u000b", "\u000c", "\u00a0", "\u200b", "\u200c", "\u200d", "\u2060",
              "\ufeff", "\u3000", "\u1680", "\u2002", "\u2003", "\u2009", "\u202f", "\u205f", "\u2028",
              "\u2029", "\u0085", "\u001c", "\u001d", "\u001e", "\u001f", "\u180e", "  ", " \t \n "]

QUOTES = ["\u201cquoted\u201d", "\u2018single\u2019", "\u201aLow\u201b", "\u201eGerman\u201f", "it\u2019s",
          "don\u2019t", "rock \u2019n\u2019 roll", "\u02bcokina", "\u00abguillemets\u00bb", "\u2039one\u203a",
          "\u300cCJK\u300d", "\u2032prime\u2033"]

LIGATURES = ["ﬁnal", "ﬂower", "oﬀice", "aﬃrm", "ﬄuent", "ﬅ", "ﬆop", "Ĳsselmeer", "ĳs", "ŉ", "Ǳ", "ǲ",
             "ǳ", "Ǉ", "ǈ", "ǉ", "Ǌ", "ǋ", "ǌ", "Ǆ", "ǅ", "ǆ", "æ Æ œ Œ", "ﬓﬔ ﬕ"]

FULLWIDTH = ["Ｈｅｌｌｏ　Ｗｏｒｌｄ", "ＡＢＣ１２３！？", "［ｔａｇ］（ｘ）", "ｶﾀｶﾅ ﾊﾟﾋﾟﾌﾟ ｶﾞｷﾞ", "ﾟﾞ",
             "￥１００ ￡５ ￦ ￠ ￢ ￤", "＂ｑｕｏｔｅ＂ ＇ａ＇", "ﾠﾡﾢ ￂￃ", "～＠＃＄％＾＆＊"]


def pick(seq):
    return RNG.choice(seq)


def english():
    t = pick(TEMPLATES)
    n, n2, a, a2 = pick(NOUNS), pick(NOUNS), pick(ADJECTIVES), pick(ADJECTIVES)
    return t.format(n, n=n, n2=n2, a=a, a2=a2, N=n.upper(), A=a.capitalize())


def punctuation_and_numbers():
    pool = [
        "$19.99", "€1.000,50", "3.14159265358979", "1,000,000", "2026-11-23", "12:30pm", "50%", "#hashtag",
        "@user_name", "e-mail", "state-of-the-art", "C++ & C#", "x = y[0] + 1;", "https://example.com/a?b=c&d=e",
        ":-) ;-( :D", "!!!???", "...", "--", "—", "…", "(parentheses) [brackets] {braces}", "a/b\\c|d",
        "'s 't 're 've 'm 'll 'd", "IT'S", "YOU'LL", "we'VE", "'Quoted'", "'", "''", "'s'", "O'Brien",
        "1st 2nd 3rd 4th", "0x1F600", "1e-10", "+44 20 7946 0958", "~/.bashrc", "<tag>", "a<b>c", "5 < 6 > 4",
        "100°C", "±5", "×÷", "½ cup", "№5", "§ 3", "¶", "•", "™®©", "¿Qué?", "¡Hola!", "«»", "‰",
        "<start_of_text>", "<END_OF_TEXT>", "a<end_of_text>b", "<ſtart_of_text>", "'ſ", "Kelvin",
    ]
    return " ".join(RNG.sample(pool, RNG.randint(1, 5)))


def html_entity_cases():
    cases = [
        "&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&apos;", "&nbsp;", "&eacute;", "&Eacute;", "&EACUTE;",
        "caf&eacute; &amp; cr&egrave;me", "Tom &amp; Jerry", "&amp;amp;", "&amp;amp;amp;", "&amp;lt;b&amp;gt;",
        "&amp;eacute;", "&amp;#39;", "&amp", "&eacute", "&copy2026", "&notit;", "&notin;", "&noti", "&ampx",
        "&#65;&#x42;&#X43;", "&#65", "&#x41", "&#0;", "&#1;", "&#13;", "&#128;", "&#150;", "&#159;", "&#x85;",
        "&#xD800;", "&#xDFFF;", "&#1114111;", "&#1114112;", "&#99999999999999999999;", "&#xFFFE;", "&#xFDD0;",
        "&#x1F600;", "&#128512;", "&#;", "&#x;", "&#xZZ;", "&;", "& ;", "&nosuchentity;", "&AMP;", "&LT;",
        "&Amp;", "&LT", "&COPY;", "&COPY", "&NBSP;", "&ALPHA;", "&Alpha;", "&SZLIG;", "&SIGMA;", "&ENSP;",
        "a &lt; b", "<b>bold &amp; brave</b>", "x < y &amp; z", "line one &amp;\nline <two>\nline &amp; three",
        "line &amp; one\r\nline &amp; two", "&amp;\n&lt;\n&amp;", "&aacute;&Aacute;&AACUTE;&acirc;&ACIRC;",
        "&hellip;&mdash;&ndash;&lsquo;&rsquo;&ldquo;&rdquo;", "&#8220;smart&#8221; &#8216;quotes&#8217;",
        "&frac12; &sup2; &times; &divide; &deg;", "&fjlig; &ThickSpace; &NewLine; &Tab;", "&acE; &bne;",
        "&" * 3, "&&&amp;&&", "&" + "a" * 40 + ";", "&#" + "9" * 40 + ";", "&Eacute;COLE", "&euro;5",
    ]
    # Every HTML5 entity name, with and without the leading text around it.
    names = sorted(html.entities.html5)
    for i in range(0, len(names), 24):
        chunk = names[i:i + 24]
        cases.append(" ".join("&" + n for n in chunk))
        cases.append("x".join("&" + n.upper() for n in chunk if n.endswith(";")))
    return cases


def whitespace_cases():
    cases = ["", " ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u200b", "\ufeff", " \t\n\r\u000b\u000c ",
             "\u2028\u2029\u0085", "\u001c\u001d\u001e\u001f", "\u00a0\u3000\u2003 \t"]
    for _ in range(60):
        words = [english() if RNG.random() < 0.5 else pick(NOUNS) for _ in range(RNG.randint(1, 4))]
        out = pick(WHITESPACE)
        for w in words:
            out += w + "".join(pick(WHITESPACE) for _ in range(RNG.randint(1, 3)))
        cases.append(out)
    return cases


def control_cases():
    return [
        "\x1b[31mred text\x1b[0m", "\x1b[1;32mbold green\x1b[m", "\x1b[38;5;208morange", "\x1b]0;title\x07",
        "bell\x07 backspace\x08 null\x00 del\x7f", "c1 \x80\x81\x85\x8d\x91quoted\x92 \x93dq\x94 \x96 \x97 \x99",
        "\x9f\x9c\x8c\x8a", "\u206a\u206b\u206f", "\ufff9\ufffa\ufffb\ufffc\ufffd", "zero\u200dwidth\u200cjoin",
        "soft\u00adhyphen", "rtl\u200fmark\u200e", "bidi \u202eoverride\u202c", "\x1b[３１mfull-width escape",
        "tab\tsep\tvalues", "esc\x1b alone",
    ]


def accents_cases():
    cases = []
    for word in ACCENTED:
        nfd = unicodedata.normalize("NFD", word)
        cases += [word, nfd, word.upper(), nfd.upper()]
    cases += [
        "e\u0301", "a\u0300\u0301\u0302\u0303", "Z\u0351\u0352\u0353\u0354\u0355 zalgo", "\u0301 leading mark",
        "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af", "\u03b1\u0345", "\u1fb3", "a\u0345b",
        "\u0345", "\u0130stanbul", "I\u0307", "\u212b\u2126\u212a", "\u00c5\u0041\u030a", "\u1e9b\u0323",
        "\u0958\u0959", "\ufb2a\ufb2b", "\u0627\u0653", "\u3099\u309a\u304b\u3099", "\uac00\u11a8",
    ]
    return cases


def long_cases():
    cases = []
    for n in (20, 40, 80, 200):
        cases.append(" ".join(english() for _ in range(n)))
    cases += [
        "a" * 300, "ab" * 200, "supercalifragilisticexpialidocious" * 10, "1234567890" * 20,
        "!" * 500, "😀" * 100, "東京" * 100, "word " * 100, "&amp;" * 100, "&eacute;" * 90,
        "\u201chello\u201d " * 60, "ﬁ" * 150, "Ｘ" * 120, " ".join(SCRIPTS) * 2, "".join(EMOJI) * 3,
        "e\u0301" * 100, "\t\n" * 100 + "end", "x" + "\u200b" * 300 + "y",
    ]
    for _ in range(22):
        cases.append(" ".join(mixed() for _ in range(RNG.randint(30, 80))))
    return cases


BLOCKS = [
    (0x0020, 0x007e), (0x00a0, 0x00ff), (0x0100, 0x017f), (0x0180, 0x024f), (0x0250, 0x02af), (0x02b0, 0x02ff),
    (0x0370, 0x03ff), (0x0400, 0x04ff), (0x0500, 0x052f), (0x0530, 0x058f), (0x0590, 0x05ff), (0x0600, 0x06ff),
    (0x0700, 0x074f), (0x0780, 0x07bf), (0x0900, 0x097f), (0x0980, 0x09ff), (0x0a00, 0x0a7f), (0x0b80, 0x0bff),
    (0x0c00, 0x0c7f), (0x0d00, 0x0d7f), (0x0e00, 0x0e7f), (0x0e80, 0x0eff), (0x0f00, 0x0fff), (0x1000, 0x109f),
    (0x10a0, 0x10ff), (0x1100, 0x11ff), (0x1200, 0x137f), (0x13a0, 0x13ff), (0x1780, 0x17ff), (0x1800, 0x18af),
    (0x1e00, 0x1eff), (0x1f00, 0x1fff), (0x2000, 0x206f), (0x2070, 0x209f), (0x20a0, 0x20cf), (0x2100, 0x214f),
    (0x2150, 0x218f), (0x2190, 0x21ff), (0x2200, 0x22ff), (0x2460, 0x24ff), (0x2500, 0x257f), (0x25a0, 0x25ff),
    (0x2600, 0x26ff), (0x2700, 0x27bf), (0x2c00, 0x2c5f), (0x2c60, 0x2c7f), (0x2c80, 0x2cff), (0x2e80, 0x2eff),
    (0x3000, 0x303f), (0x3040, 0x309f), (0x30a0, 0x30ff), (0x3130, 0x318f), (0x3200, 0x32ff), (0x3300, 0x33ff),
    (0x4e00, 0x4fff), (0xa000, 0xa0ff), (0xa640, 0xa69f), (0xa720, 0xa7ff), (0xac00, 0xadff), (0xe000, 0xe0ff),
    (0xf900, 0xfaff), (0xfb00, 0xfb4f), (0xfb50, 0xfdff), (0xfe10, 0xfe6f), (0xfe70, 0xfeff), (0xff00, 0xffef),
    (0xfff0, 0xfffd), (0x10330, 0x1034f), (0x1d400, 0x1d7ff), (0x1f000, 0x1f0ff), (0x1f100, 0x1f1ff),
    (0x1f300, 0x1f5ff), (0x1f600, 0x1f64f), (0x1f900, 0x1f9ff), (0x20000, 0x200ff),
]


def assigned(cp):
    """Assigned in Python's Unicode version, and a scalar value Rust can hold."""
    return not 0xd800 <= cp <= 0xdfff and unicodedata.category(chr(cp)) != "Cn"


def block_sweeps():
    cases = []
    for lo, hi in BLOCKS:
        cps = [cp for cp in range(lo, hi + 1) if assigned(cp)]
        for i in range(0, len(cps), 48):
            chunk = cps[i:i + 48]
            sep = pick(["", " ", "a", " x"])
            # Combining marks get a base letter in front half of the time.
            cases.append(sep.join(("a" if RNG.random() < 0.5 and unicodedata.combining(chr(c)) else "") + chr(c)
                                  for c in chunk))
    return cases


def mixed():
    kind = RNG.randrange(9)
    if kind == 0:
        return english()
    if kind == 1:
        return pick(SCRIPTS)
    if kind == 2:
        return pick(EMOJI)
    if kind == 3:
        return pick(ACCENTED)
    if kind == 4:
        return pick(QUOTES)
    if kind == 5:
        return pick(LIGATURES)
    if kind == 6:
        return pick(FULLWIDTH)
    if kind == 7:
        return punctuation_and_numbers()
    return pick(WHITESPACE)


def cases():
    out = [english() for _ in range(120)]
    out += [punctuation_and_numbers() for _ in range(100)]
    out += SCRIPTS + [s.upper() for s in SCRIPTS] + [f"{english()} {pick(SCRIPTS)}" for _ in range(40)]
    out += EMOJI + [f"{english()} {pick(EMOJI)}{pick(EMOJI)}" for _ in range(40)]
    out += QUOTES + LIGATURES + FULLWIDTH + [f"{pick(QUOTES)} {pick(LIGATURES)} {pick(FULLWIDTH)}" for _ in range(30)]
    out += html_entity_cases()
    out += whitespace_cases()
    out += control_cases()
    out += accents_cases()
    out += long_cases()
    out += block_sweeps()
    out += [" ".join(mixed() for _ in range(RNG.randint(2, 8))) for _ in range(150)]
    return out


MOJIBAKE = ["cafÃ©", "Ã  la carte", "â€œquotedâ€\x9d", "Ã‰COLE", "ÐŸÑ€Ð¸Ð²ÐµÑ‚", "Ã¼ber Ã¤rger",
            "&Atilde; &Auml", "&Acirc; &Acy;", "The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t have eyebrows."]


def needs_mojibake_repair(text):
    import ftfy

    return ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False)


def main():
    kept, mojibake = [], list(MOJIBAKE)
    for text in cases():
        (mojibake if needs_mojibake_repair(text) else kept).append(text)
    json.dump({"cases": kept, "mojibake": mojibake}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
