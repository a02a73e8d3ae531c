"""Drug names by their shape: the stems the WHO's International Nonproprietary Names give a
class of drugs (-pril, -sartan, -olol, -xaban, -statin, ...). A word of that shape is a drug,
not a person or a place: the de-identifier must not replace it (a summary that reads
"START gage park 5 mg" has lost the drug), and a note's medication change is found by it."""
from __future__ import annotations

import re

from . import vocab

INN_STEMS = (r"pril|sartan|olol|alol|statin|dipine|azole|cillin|mycin|micin|floxacin|cycline|parin|xaban|gatran|"
             r"glutide|gliflozin|gliptin|semide|tanide|thiazide|olone|isone|tidine|prazole|mab|tinib|triptan|afil|"
             r"setron|oxacin|avir|ovir|conazole|fungin|terol|tropium|dronate|caine|profen|fenac|coxib|oxicam|azine|"
             r"apine|azepam|azolam|codone|morphone|nitrate|glargine|lispro|aspart|detemir|degludec|oxetine|aline|"
             r"triptyline|teplase|parinux|grel|relor|vudine|lukast|sone|dronate|tadine|zosin|ipramine")
DRUG_SHAPE = re.compile(rf"(?i)^[a-z]{{2,}}(?:{INN_STEMS})$")


def is_drug_shaped(word: str) -> bool:
    return bool(DRUG_SHAPE.match(word))


def is_drug(word: str) -> bool:
    """A drug's name (generic or brand, from the packaged drug list) or a word of a drug's shape."""
    return word.lower() in vocab.drugs() or is_drug_shaped(word)
