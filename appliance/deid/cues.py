"""The cue words the context recognisers read: titles, relations, credentials, places,
institutions, and the words that stop a name. Lower case; data, not logic."""
from __future__ import annotations

TITLES = frozenset("dr drs doctor mr mrs ms miss mister madam prof dr's".split())
# Doctors' names are often ordinary words (Dr. Small, dr brown); "MS:" is also mental status.
DOCTOR_TITLES = frozenset("dr drs doctor dr's prof mr mrs mister miss madam".split())
CREDENTIALS = frozenset("rn rrt crt md np lpn licsw lcsw cna msw pharmd bsn cnm crna aprn pa-c".split())
SAINTS = frozenset("st saint ste".split())
RELATIONS = frozenset("""son sons daughter daughters dtr dtrs wife husband hubby spouse sister sisters brother
brothers sis bro mother mom mum father dad niece nephew nieces nephews friend friends proxy hcp caseworker
grandson granddaughter grandaughter grandchild grandmother grandfather in-law fiance fiancee partner
boyfriend girlfriend cousin aunt uncle neighbor neighbour sitter pastor priest chaplain rabbi guardian
stepson stepdaughter step-daughter step-son named called social""".split())
# Words that end a name or never start one, even when a cue precedes them.
STOP = frozenset("""a an the and or but of to in into on at by for from with without is was were are be been
has had have will would can could may might should shall do does did not no yes he she his her him they them
my your our me us
their it its this that these those who whom which what when where why how here there then than as also
aware notified called paged spoke updated informed at bedside in to visit visited re regarding about
re: per please pls came come comes went left via w wt x q""".split())
INSTITUTION_WORDS = frozenset("""hospital hosp hospitals rehab rehabilitation manor clinic infirmary
sanitarium hospice healthcare center centre ctr campus""".split())
# "center"/"home" name an institution only after these.
INSTITUTION_QUALIFIER = {"center": {"medical", "med", "health", "rehab", "rehabilitation", "cancer"},
                          "ctr": {"medical", "med", "health"},
                          "centre": {"medical", "health"}, "home": {"nursing"}}
MOVEMENT = frozenset("to from into at in by".split())
MOVERS = frozenset("""transferred transfered transfer transferring xfer xferred admitted admit came come taken
lives live living returned return returning sent discharged brought moved arrived going go went trans
readmitted presented adm admitting tx medflight flown arrival enroute followed seen c'd dc'd discharge
dispo back transport transported referred refer adm'd sent""".split())
# Words that are part of a hospital's own name ("Union Memorial", "Harbor", "Mercy").
HOSPITAL_WORDS = frozenset("memorial regional harbor mercy samaritan presbyterian baptist methodist adventist".split())
HOSPITAL_PHRASES = frozenset({("sacred", "heart"), ("holy", "cross"), ("good", "samaritan"), ("holy", "family"),
                              ("mount", "sinai"), ("mt", "sinai"), ("johns", "hopkins"), ("cedars", "sinai"),
                              ("beth", "israel"), ("franklin", "square"), ("union", "memorial"), ("st", "agnes"),
                              ("st", "joseph"), ("st", "josephs"), ("st", "mary's"), ("st", "marys"),
                              ("eastern", "shore"), ("u", "maryland")})
STATES = frozenset("""al ak az ar ca co ct de dc fl ga hi id il in ia ks ky la me md ma mi mn ms mo mt ne nv
nh nj nm ny nc nd oh ok or pa ri sc sd tn tx ut vt va wa wv wi wy""".split())
# "cardiac rehab", "community hospital": a kind of service, not a named institution.
SERVICES = frozenset("""cardiac pulmonary physical occupational speech acute subacute inpatient outpatient
psychiatric psych stroke pediatric surgical medical general community county state local outside another
other the his her their our this that same previous prior rehab nursing teaching""".split())
# Capitalised mid-sentence for other reasons than being a name.
CAPITALISED_WORDS = frozenset("""i english french spanish german italian american african asian european
monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
september october november december god christmas easter internet web hospital university college
street avenue road lane north south east west new old great little saint bank group company""".split())
NAMING_CUES = ("says", "said", "call me", "calls me", "called", "named", "name is", "him", "her", "kid",
                "starring", "meet", "dear", "hi", "hello", "thanks", "told", "asked", "son", "daughter", "wife",
                "husband")
STRONG_NAMING_CUES = ("my name is", "name is", "call me", "calls me", "maiden name is", "last name is",
                       "first name is", "named him", "named her")
PERSON_VERBS = frozenset("""spent lives lived works worked says said told asked wrote is was has had will would
visited called went came""".split())
CUES = TITLES | CREDENTIALS | RELATIONS | SAINTS | INSTITUTION_WORDS
