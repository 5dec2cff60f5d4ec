"""Verdict cues in the other languages the workstation is used in: German, French, Spanish, Italian,
Chinese, Japanese.

Each table has negated forms and plain words; every match is blanked out before the next
pattern runs, so "nicht defekt", "没有异常" or "異常なし" are read as normal and never again as
the bare "defekt" / "异常" / "異常" that they contain. Words spelt as in English ("normal") are
left to the English rules (`inspector.vlm.lexicon`).
"""

from __future__ import annotations

import re

_FOREIGN_TABLES: dict[str, tuple[list[tuple[str, bool]], list[tuple[str, bool]]]] = {
    "de": (
        [  # negated forms
            (r"\bnicht\s+(?:in ordnung|normal|einwandfrei|fehlerfrei)\b", True),
            (r"\bnicht\s+(?:\w+\s+)?(?:defekt|anomal|fehlerhaft|beschädigt|auffällig)\w*", False),
            (
                r"\bkein\w*\s+(?:\w+\s+){0,2}?(?:defekt\w*|fehler\w*|auffälligkeit\w*|anomalie\w*|schäden|"
                r"schaden|risse?|kratzer|mängel|beschädigung\w*)",
                False,
            ),
        ],
        [  # plain words
            (r"\b(?:in ordnung|unauffällig|fehlerfrei|einwandfrei|ohne befund)\b", False),
            (r"\b(?:anomal|defekt|fehlerhaft|beschädigt|auffällig)\b", True),
            (r"\b(?:ein|eine|einen)\s+(?:\w+\s+)?(?:riss|kratzer|delle|fleck|bruch|loch)\b", True),
        ],
    ),
    "fr": (
        [  # negated forms
            (r"\b(?:n[’']?\s*(?:est|sont)\s+)?pas\s+(?:normale?s?|normaux|conformes?)\b", True),
            (r"\bn[’']?\s*(?:est|sont|a|ont)\s+pas\s+(?:\w+\s+)?(?:défectueu\w*|anormal\w*|endommagé\w*)", False),
            (r"\b(?:aucun\w*|pas d[’']|sans)\s*(?:\w+\s+)?(?:défauts?|anomalies?|dommages?|fissures?|rayures?)", False),
        ],
        [  # plain words
            (r"\b(?:normales?|normaux|conformes?|intactes?)\b", False),  # not "normal", "intact": English
            (r"\b(?:défectueu(?:x|se)|anormale?|anomalie\s+(?:détectée|présente|visible)|endommagée?)\b", True),
            (
                r"\b(?:présente|montre|il y a)\s+(?:une?|des)\s+(?:\w+\s+)?(?:bosses?|fissures?|rayures?|"
                r"taches?|trous?|défauts?)\b",
                True,
            ),
        ],
    ),
    "es": (
        [  # negated forms
            (r"\bno\s+(?:es|está|son|están)\s+normal(?:es)?\b", True),
            (r"\bno\s+(?:es|está|son|están)\s+(?:\w+\s+)?(?:defectuos\w*|anómal\w*|anormal\w*|dañad\w*)", False),
            (
                r"\b(?:sin|ningún|ninguna|no (?:se )?(?:observan?|detectan?|ven?|hay))\s+(?:\w+\s+)?(?:defectos?|"
                r"anomalías?|daños?|grietas?|rayas?)",
                False,
            ),
        ],
        [  # plain words
            (r"\b(?:anómal[oa]|anormal|defectuos[oa])\b", True),
            (
                r"\bhay\s+(?:una?|varios|varias)\s+(?:\w+\s+)?(?:grietas?|rayas?|defectos?|abolladuras?|manchas?)\b",
                True,
            ),
        ],
    ),
    "it": (
        [  # negated forms
            (r"\bnon\s+(?:è|e'|sono)\s+(?:normal[ei]|integr[oai]|conform[ei])\b", True),
            (r"\bnon\s+(?:è|e'|sono)\s+(?:\w+\s+)?(?:difettos\w*|anomal\w*|danneggiat\w*)", False),
            (
                r"\bnon\s+(?:ci sono|c'è|ha|presenta|si (?:vedono|osservano|notano))\s+(?:\w+\s+)?(?:difetti|difetto|"
                r"anomali[ae]|danni|crepe?|graffi)",
                False,
            ),
            (
                r"\b(?:nessun[ao]?|senza|privo di)\s+(?:\w+\s+)?(?:difetti|difetto|anomali[ae]|danni|crepe?|graffi)",
                False,
            ),
        ],
        [  # plain words
            (r"\b(?:normale|integro|conforme)\b", False),
            (r"\b(?:anomal[oa]|difettos[oa]|danneggiat[oa])\b", True),
            (
                r"\b(?:è presente|sono presenti|c'è|ci sono)\s+(?:una?|un'|dei|delle|degli)\s*(?:\w+\s+)?"
                r"(?:crep[ae]|graffi[o]?|difett[oi]|ammaccatur[ae]|macchi[ae]|fori|foro|rottur[ae])\b",
                True,
            ),
            (r"\b(?:manca|mancano)\b", True),
        ],
    ),
    "zh": (
        [  # negated forms
            (r"不正常|不是正常", True),
            (
                r"(?:没有|無|无|未见|未發現|未发现|未检测到|不存在|并无|不是)\S{0,6}?"
                r"(?:异常|異常|缺陷|瑕疵|划痕|裂纹|损伤|破损)",
                False,
            ),  # "没有发现任何异常", "没有看到异常"
            (r"(?:异常|缺陷|瑕疵)\s*[：:]\s*(?:无|没有|否)", False),  # "异常：无"
            (
                r"(?:没有|无|未见|未发生|未造成|未出现|并未)(?:明显|严重)?(?:的)?\S{0,6}?(?:事故|碰撞|追尾|火灾|打架|斗殴)",
                False,
            ),
        ],
        [  # plain words ("正常行驶": traffic moving normally is said of some vehicles, not the scene)
            (r"正常(?!行驶|通行|行走|运行)", False),
            (r"异常|(?:有|存在)(?:明显)?(?:的)?(?:缺陷|瑕疵|划痕|裂纹|损伤|破损)", True),
            (r"事故|碰撞|追尾|拥堵|火灾|打架|斗殴|抢劫|盗窃|爆炸", True),  # events of a surveillance scene
        ],
    ),
    "ja": (
        [  # negated forms
            (r"正常(?:で|では|じゃ)(?:は)?(?:ない|ありません)", True),
            (
                r"(?:異常|欠陥|傷|キズ|ひび|割れ|不良)(?:は|が|も)?(?:なし|無し|ない|ありません|見(?:られ|当たり)ません|"
                r"認められません|確認されません|認められない|見当たらない|見られない|確認されない|検出されませんでした|"
                r"検出されない)",
                False,
            ),
            (r"正常(?:品|サンプル)?と(?:一致|同等)", False),
        ],
        [  # plain words
            (r"正常", False),
            (r"異常|不良|(?:欠陥|傷|キズ|ひび|割れ)(?:が|も)?(?:あり|ある|入って)", True),
        ],
    ),
}
# the negated forms of every language run before any plain word: "non è normale" must not leave
# "normale" to the French table, nor "正常ではありません" leave "正常" to the Chinese one
_FOREIGN_PATTERNS = [
    (re.compile(pattern, re.IGNORECASE), verdict)
    for stage in (0, 1)
    for table in _FOREIGN_TABLES.values()
    for pattern, verdict in table[stage]
]
# refusals in the other languages ("I can't analyse / help"): like English ones, never a verdict
_FOREIGN_REFUSALS = re.compile(
    r"\b(?:je ne (?:peux|suis) pas (?:en mesure d[’']|capable d[’'])?\s*(?:analyser|aider|fournir|diagnostiquer)|"
    r"no puedo (?:ayudar|analizar|proporcionar|diagnosticar)|lo siento|"
    r"non posso (?:aiutare|analizzare|fornire|diagnosticare)|mi dispiace|"
    r"ich kann (?:\w+\s+){0,2}nicht (?:helfen|analysieren|beurteilen|diagnostizieren)|es tut mir leid)\b"
    r"|无法(?:分析|诊断|协助|帮助)|不能(?:分析|诊断|协助)|抱歉|申し訳|できかねます|(?:診断|分析)(?:は)?できません",
    re.IGNORECASE,
)
_FOREIGN_HEDGES = re.compile(
    r"\b(?:vielleicht|möglicherweise|eventuell|schwer zu sagen|unklar|nicht sicher|"
    r"peut-être|peut être|difficile à dire|incertain|pas sûr|"
    r"quizás|quizá|tal vez|es posible|posiblemente|no estoy segur[oa]|"
    r"forse|potrebbe|non sono sicur[oa]|difficile dirlo)\b"
    r"|可能|也许|不确定|无法确定|无法判断|かもしれ|判断できません|わかりません|不明",
    re.IGNORECASE,
)


def foreign_cues(text: str) -> tuple[int, int]:
    """Counts of anomalous and normal phrases from the other-language tables (see above)."""
    remaining = text.lower()
    counts = {True: 0, False: 0}
    for pattern, verdict in _FOREIGN_PATTERNS:
        remaining, found = pattern.subn(" ", remaining)
        counts[verdict] += found
    return counts[True], counts[False]


def foreign_refusal(text: str) -> bool:
    """A refusal in another language ("je ne peux pas analyser", "无法分析")."""
    return _FOREIGN_REFUSALS.search(text) is not None


def foreign_hedged(text: str) -> bool:
    """A hedge in another language ("vielleicht", "forse", "可能")."""
    return _FOREIGN_HEDGES.search(text) is not None
