"""Offline matching of staff questions to knowledge-base entries: a keyword index, not a language model.

Questions arrive as teachers type them on phones: with or without diacritics, in any word order, with
typos, abbreviations ("hs", "sdt") and sometimes in English. Each text is reduced to canonical tokens:

1. a few words whose diacritics carry the meaning are tagged before the accents go ("mượn" = borrow,
   "muộn" = late and "muốn" = want all fold to "muon");
2. `fold` drops case and diacritics;
3. phrases and synonyms become one canonical token ("vắc xin", "vaccine", "tiêm chủng" -> `vacxin`;
   "ở đâu", "mục nào", "where" -> `odau`), so different wordings of one intent meet;
4. stop-words go; unknown words are mended when they are a typo or Telex residue of a known one.

An entry is scored against a question by how much of the question's information (IDF-weighted) it
covers, how close its best phrasing is, shared word pairs, and a rapidfuzz ratio for what is left of
typos and order. The index is built once per set of entries; a question then takes about a millisecond.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path

from rapidfuzz import fuzz, process

from storage.schemas.faq import FaqEntryIn, FaqEntryOut, parse_knowledge_base
from storage.text import fold

KNOWLEDGE_BASE_PATH = Path(__file__).parent / "data" / "faq.yaml"

# Below this a question takes the not-found path. Set on tests/faq_questions.py: the in-domain questions
# answered right score above it, the out-of-domain ones below (see docs/faq.md).
MATCH_THRESHOLD = 0.35
# The question's information must be at least this much covered by the best entry, too.
MIN_COVERAGE = 0.30
# Related questions (buttons) must score at least this, and this share of the best score.
RELATED_MIN_SCORE = 0.25
RELATED_MIN_SHARE = 0.55
# An unmatched question's likely topic (for its contact) and "did you mean" buttons need this much.
GUESS_MIN_SCORE = 0.28

# --- normalisation tables ------------------------------------------------------------------------

# Words whose diacritics decide the meaning, mapped before folding (lower case, NFC).
ACCENTED_WORDS: dict[str, str] = {
    "mượn": "muon muontam",  # borrow: a loan; the plain "muon" stays for questions typed without accents
    "muộn": "muon tre",  # late
    "muốn": "",  # want
    "mấy": "baonhieu",  # how many (not "máy", a machine)
    "điền": "nhap",  # fill in (not "diện", a category, or "điện", electricity)
    "diện": "doituong",
    "đang": "",  # in the middle of (not "đăng nhập", to log in)
    "cô": "",  # the teacher asking
    "sở": "sogd",  # the provincial Department (not "số", a number)
    "trẻ": "tre_em",  # a child (not "trễ", late)
    "nằm": "",  # lies (where something is), not "năm", a year
}

# Folded phrases -> canonical tokens. Longer phrases win over their parts; order here does not matter. A
# key with a space gives two tokens ("nop sogd"); "_" gives none (a stop-word).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "chuongtrinh": (
        "chuong trinh",
        "song va may tinh cho em",
        "song va may tinh",
        "song va may",
        "program",
        "programme",
        "waves and computers for children",
    ),
    "vacxin": (
        "vac xin",
        "vacxin",
        "vaccine",
        "vaccines",
        "vaccin",
        "vacin",
        "vacxine",
        "vaxin",
        "vac xinh",
        "vacsin",
        "vx",
        "vac sin",
        "vaccination",
        "vaccinated",
        "vaccinate",
        "tiem",
        "tiem chung",
        "chich",
        "chich ngua",
        "jab",
        "covid vaccine",
    ),
    "mui": ("mui", "mui thu", "dose", "doses", "shot", "shots"),
    "nhaclai": ("nhac lai", "mui nhac", "tang cuong", "booster", "mui 3"),
    "maytinh": (
        "may",
        "may tinh",
        "may vi tinh",
        "may tinh xach tay",
        "may tinh bang",
        "may bang",
        "laptop",
        "laptops",
        "lap top",
        "ipad",
        "tablet",
        "tablets",
        "thiet bi",
        "thiet bi thong minh",
        "dien thoai thong minh",
        "smartphone",
        "computer",
        "computers",
        "device",
        "devices",
        "pc",
    ),
    "muontam": (
        "muon tam",
        "cho muon",
        "muontam",
        "loan",
        "loaned",
        "loans",
        "lend",
        "lent",
        "borrow",
        "borrowed",
        "tam thoi",
    ),
    "taitro": (
        "tai tro",
        "nha tai tro",
        "ung ho",
        "quyen gop",
        "manh thuong quan",
        "nha hao tam",
        "donate",
        "donated",
        "donation",
        "donations",
        "donor",
        "donors",
        "sponsor",
        "sponsors",
        "sponsored",
        "cong ty",
        "doanh nghiep",
        "company",
        "companies",
        "business",
        "ca nhan",
        "co quan",
        "hoi phu huynh",
        "ngan hang",
        "bank",
        "charity",
    ),
    "tang": ("tang", "trao tang", "bieu", "gift", "gifts", "given away"),
    "bangiao": (
        "ban giao",
        "giao",
        "trao",
        "phat",
        "cap phat",
        "phat may",
        "giao may",
        "dua may",
        "handover",
        "handed",
        "hand over",
        "give",
        "giving",
        "gave",
    ),
    "tiepnhan": ("tiep nhan", "nhan", "nhan duoc", "nhan ve", "received", "receive", "receipt"),
    # "hạn nộp" keeps its verb: submitting is what tells a round's deadline from the 5-day rule.
    "han": (
        "han",
        "han chot",
        "han cuoi",
        "thoi han",
        "deadline",
        "deadlines",
        "khi nao",
        "bao gio",
        "luc nao",
        "may ngay",
        "bao lau",
        "trong bao lau",
        "may gio",
        "ngay nao",
        "thoi gian",
        "when",
        "how soon",
        "how long",
        "how many days",
        "how many hours",
        "due",
        "by when",
        "baonhieu ngay",
        "baonhieu gio",
        "baonhieu lau",
        "lich",
        "schedule",
        "kip",
        "co kip",
        "in time",
        "bao nhieu ngay",
        "bao nhieu lau",
        "trong vong",
        "trong bao nhieu ngay",
        "bh",
    ),
    "tre": ("tre", "tre han", "qua han", "cham", "cham tre", "late", "overdue", "delay", "delayed"),
    "odau": (
        "o dau",
        "cho nao",
        "muc nao",
        "vao dau",
        "menu nao",
        "o muc nao",
        "phan nao",
        "duong dan",
        "tab nao",
        "nut nao",
        "where",
        "which menu",
        "menu",
        "which section",
        "nam o dau",
        "nam dau",
        "o cho nao",
    ),
    "muc": ("muc", "item"),
    "lienhe": (
        "lien he",
        "lien lac",
        "hoi ai",
        "goi ai",
        "goi cho ai",
        "sdt",
        "so dien thoai",
        "dien thoai",
        "so dt",
        "dt",
        "zalo",
        "nguoi phu trach",
        "ai phu trach",
        "contact",
        "contacts",
        "phone",
        "call",
        "danh ba",
        "who do i ask",
        "who should i ask",
        "who to ask",
        "who can i ask",
        "who do i call",
    ),
    "cach": (
        "lam sao",
        "the nao",
        "nhu the nao",
        "ra sao",
        "lam the nao",
        "bang cach nao",
        "cach",
        "cach nao",
        "how",
        "how to",
        "how do",
        "huong dan",
        "hd",
        "thao tac",
        "ntn",
        "lam gi",
        "phai lam gi",
        "can lam gi",
        "lam gi tiep",
        "what should i do",
        "what do i do",
    ),
    "lagi": ("la gi", "de lam gi", "dung de lam gi", "what is", "what for", "nghia la gi"),
    "hocsinh": (
        "hoc sinh",
        "hs",
        "hoc tro",
        "cac em",
        "tung em",
        "student",
        "students",
        "pupil",
        "pupils",
        "child",
        "children",
        "tre_em",
    ),
    "nhap": (
        "nhap",
        "cap nhat",
        "khai bao",
        "ghi",
        "ghi nhan",
        "ghi lai",
        "nhap lieu",
        "nhap vao",
        "dien vao",
        "enter",
        "entered",
        "input",
        "update",
        "record",
        "recorded",
        "fill",
        "fill in",
    ),
    "baocao": ("bao cao", "report", "reports", "bc", "reported", "reporting"),
    "nop": ("nop", "gui", "gui len", "gui di", "submit", "submits", "send", "sent"),
    "duyet": (
        "duyet",
        "phe duyet",
        "xet duyet",
        "ra soat",
        "chot",
        "chot duyet",
        "approve",
        "approves",
        "approved",
        "review",
        "reviews",
        "reviewed",
        "check",
    ),
    "tralai": ("tra lai", "tra ve", "gui tra", "sent back", "returned", "return", "give back"),
    # Passive: "our report was sent back" (not the reviewer's act of sending it back).
    "bitralai": (
        "bi tra",
        "bi tra lai",
        "bi tra ve",
        "bi tu choi",
        "bi gui tra",
        "was sent back",
        "got sent back",
        "were sent back",
    ),
    "tuchoi": ("tu choi", "khong tiep nhan", "khong nhan", "reject", "rejected", "rejects"),
    "loi": ("loi", "bi loi", "bao loi", "error", "errors", "khong hop le", "invalid", "fail", "failed"),
    "sua": (
        "sua",
        "chinh sua",
        "sua lai",
        "nhap sai",
        "nhap nham",
        "nham",
        "lo nhap",
        "edit",
        "fix",
        "mistake",
        "wrong",
        "correct",
    ),
    "xoa": ("xoa", "xoa bo", "huy ban ghi", "delete", "remove"),
    "excel": (
        "excel",
        "file excel",
        "tep excel",
        "xlsx",
        "xls",
        "bang tinh",
        "spreadsheet",
        "file",
        "tep",
        "tap tin",
        "files",
    ),
    "mau": ("mau", "file mau", "bieu mau", "tep mau", "template", "templates", "form"),
    "tailen": ("tai len", "up", "upload", "uploaded", "day len", "gui file", "up file"),
    "taive": ("tai ve", "tai xuong", "download", "xuat", "export", "lay file", "lay", "lay ve"),
    "huongdan": ("sheet huong dan", "quy uoc", "quy dinh nhap", "instructions", "instruction"),
    "nhucau": ("nhu cau", "can ho tro", "need", "needs", "can may", "needing", "needed"),
    "hotro": ("ho tro", "support", "help", "mien phi", "free"),
    "ngheo": ("ho ngheo", "ngheo", "poor", "poverty"),
    "canngheo": ("can ngheo", "ho can ngheo", "near poor", "near-poor"),
    "tuvong": (
        "tu vong",
        "qua doi",
        "mo coi",
        "mat cha",
        "mat me",
        "cha me mat",
        "died",
        "dead",
        "orphan",
        "orphaned",
        "chet",
        "mat do covid",
    ),
    "covid": ("covid", "covid 19", "dich", "dich benh", "corona", "dich covid"),
    "khokhan": ("kho khan", "kho khan khac", "hoan canh kho khan", "hardship"),
    "doituong": (
        "doi tuong",
        "thuoc dien",
        "tieu chuan",
        "tieu chi",
        "du dieu kien",
        "dieu kien",
        "eligible",
        "qualify",
        "qualifies",
        "eligibility",
        "ai duoc",
        "nhung ai",
        "em nao",
        "hoc sinh nao",
        "hs nao",
        "nhung em nao",
        "truong hop nao",
        "which students",
        "who can",
        "who gets",
        "who is eligible",
    ),
    "csdl": (
        "csdl",
        "co so du lieu",
        "he thong",
        "phan mem",
        "csdl nganh",
        "csdl toan nganh",
        "trang web",
        "web",
        "website",
        "moet",
        "csdl.moet.gov.vn",
        "database",
        "ministry system",
        "ministry database",
        "he thong cua bo",
        "csdl cua bo",
        "he thong bo",
        "system",
        "trang",
        "link",
    ),
    "tieuhoc": ("tieu hoc", "cap 1", "cap i", "th", "primary"),
    "thcs": ("trung hoc co so", "thcs", "cap 2", "cap ii", "secondary", "lower secondary"),
    "phong": (
        "phong",
        "phong gd",
        "phong gddt",
        "phong gd dt",
        "phong giao duc",
        "pgd",
        "pgddt",
        "pgd dt",
        "district office",
        "district",
        "huyen",
    ),
    "sogd": ("sogd", "so gd", "so gddt", "so gd dt", "so giao duc", "sgd", "department", "province"),
    "tructuyen": ("truc tuyen", "hoc truc tuyen", "online", "hoc online", "hoc tu xa"),
    "ketnoi": (
        "ket noi",
        "mang",
        "internet",
        "wifi",
        "sim",
        "4g",
        "3g",
        "song",
        "network",
        "connection",
        "connectivity",
    ),
    "hieutruong": ("hieu truong", "ht", "ban giam hieu", "bgh", "principal", "headmaster"),
    "chuyenvien": ("chuyen vien", "cv", "specialist", "specialists"),
    "thongke": ("thong ke", "bo phan thong ke", "statistics", "statistic"),
    "tonghop": ("tong hop", "compile", "compiled", "tong ket"),
    "mamoi": ("ma moi", "link moi", "loi moi", "invite", "invitation"),
    "dangky": ("dang ky", "dang ki", "register", "registration", "sign up", "signup", "start"),
    "dangnhap": ("dang nhap", "login", "log in", "mat khau", "password", "tai khoan", "account"),
    "ngonngu": ("ngon ngu", "tieng anh", "tieng viet", "english", "language", "vietnamese", "lang"),
    "giaovien": ("giao vien", "gv", "teacher", "teachers", "can bo", "can bo phu trach"),
    "bo": ("bo gd", "bo gddt", "bo giao duc", "bo giao duc va dao tao", "ministry", "bo cap", "bo phan bo"),
    "bophan": ("bo phan", "unit", "section"),
    "huy": ("huy", "huy bo", "thoat", "cancel", "dung lai", "bo qua"),
    "tieptuc": (
        "tiep tuc",
        "lam tiep",
        "nhap tiep",
        "resume",
        "continue",
        "dang do",
        "nhap do",
        "lam do",
        "bi gian doan",
        "gian doan",
        "nhap dang do",
    ),
    "cauhoi": ("cau hoi", "hoi dap", "faq", "cau hoi thuong gap", "question", "questions"),
    # "I have a question / a problem": the same filler in every "whom do I ask" question.
    "vuongmac": ("thac mac", "vuong mac", "gap kho khan", "problem", "issue"),
    "lichsu": ("lich su", "nhat ky", "history", "log", "ai da"),
    "khop": (
        "khop",
        "trung khop",
        "thong nhat",
        "giong nhau",
        "lech",
        "khac nhau",
        "match",
        "mismatch",
        "chenh lech",
    ),
    "solieu": ("so lieu", "du lieu", "data", "figures", "numbers", "figure", "dl"),
    "lop": (
        "lop",
        "ca lop",
        "class",
        "classes",
        "hang loat",
        "nhieu em",
        "cung luc",
        "mot luc",
        "ca khoi",
        "khoi",
        "ca truong",
        "cung mot ngay",
        "cung ngay",
        "mot buoi",
    ),
    "loai": ("loai", "brand", "type", "kind", "hang"),
    "ngoaitruong": (
        "ngoai truong",
        "noi khac",
        "ben ngoai",
        "o phuong",
        "tram y te",
        "cong dong",
        "dia phuong",
        "o que",
        "outside",
        "community",
        "elsewhere",
        "phuong",
        "xa",
        "benh vien",
        "hospital",
        "phong kham",
        "trung tam y te",
        "tiem dich vu",
        "clinic",
    ),
    "cauhinh": ("cau hinh", "thong so", "specs", "ram", "cpu", "chip"),
    "1ngay": ("1 ngay", "01 ngay", "mot ngay", "24h", "24 gio", "one day", "1 day", "ngay hom sau"),
    "5ngay": ("5 ngay", "05 ngay", "nam ngay", "five days", "5 days", "five day", "5 day"),
    "15h30": ("15h30", "15 gio 30", "15 gio 30 phut", "3 gio chieu", "3h30"),
    "tiendo": (
        "tien do",
        "progress",
        "theo doi",
        "don doc",
        "chua nop",
        "chua xong",
        "truong nao",
        "nhung truong nao",
        "which schools",
        "da nop chua",
        "nop chua",
    ),
    "yte": ("y te", "y te truong hoc", "school health", "health"),
    "trachnhiem": ("trach nhiem", "responsible", "responsibility", "nhiem vu"),
    "4.8.1": ("481", "4 8 1", "4.8.1"),
    "4.8.2": ("482", "4 8 2", "4.8.2"),
    "4.8.3": ("483", "4 8 3", "4.8.3"),
    "4.8.3.1": ("4831", "4 8 3 1", "4.8.3.1"),
    "4.8.3.2": ("4832", "4 8 3 2", "4.8.3.2"),
    "4.9.1": ("491", "4 9 1", "4.9.1"),
    # Phrases that carry two meanings, or none.
    # Asking what to fill in ("cần nhập gì"), not where or when.
    "nhap gomgi": ("nhap gi", "can nhap gi", "nhap nhung gi", "ghi nhung gi", "khai bao gi", "phai nhap gi"),
    # "Only now entering" means entering late.
    "nhap tre": ("moi nhap", "gio moi nhap", "bay gio moi nhap", "nhap bu"),
    "cosao": ("co sao khong", "co bi sao khong", "co sao ko", "co bi gi khong", "co van de gi khong"),
    "nhanh": ("nhanh", "cho nhanh", "lau qua", "mat thoi gian", "mat cong", "quickly", "faster"),
    # "số liệu" (figures) is never "Sở" (the Department) however it is reached.
    "nop solieu": ("gui so lieu", "nop so lieu", "gui len so lieu"),
    "baocao solieu": ("bao cao so lieu",),
    "khuyennghi": ("nen", "co nen", "should", "khuyen nghi", "recommended", "recommend", "tot hon", "better"),
    "nhaptay": ("nhap tay", "nhap thu cong", "tung em mot", "tung hoc sinh mot", "by hand", "manually"),
    "giadinh": ("gia dinh", "family", "household"),
    "cauhoi bot": ("hoi bot",),
    # Politeness before the question ("cho em hỏi", "xin hỏi"): nothing to match.
    "_": (
        "cho em hoi",
        "cho hoi",
        "xin hoi",
        "cho toi hoi",
        "cho minh hoi",
        "em muon hoi",
        "toi muon hoi",
        "hoi chut",
        "hoi xiu",
        "cho co hoi",
        "cho thay hoi",
        "cho em hoi chut",
    ),
    "baonhieu": ("bao nhieu", "how many", "how much", "bn"),
    # Reports to the provincial Department ("báo cáo Sở"; "so" alone is also "số", a number).
    "baocao sogd": ("bao cao so", "bc so", "bao cao len so"),
    "nop sogd": ("gui so", "nop so", "gui len so", "gui ve so"),
    # Machines that are not computers: "xe máy" is a motorbike, "máy bay" a plane.
    "xemay": ("xe may",),
    "maykhac": (
        "may bay",
        "may giat",
        "may lanh",
        "may anh",
        "may chieu",
        "may pha",
        "may say",
        "may bom",
        "may cat",
        "may phat dien",
        "may xuc",
    ),
    "yeucau": ("yeu cau", "require", "required", "requirement"),
    "truong": ("truong", "school", "schools", "cac truong", "trg"),
    "motem": (
        "mot em",
        "1 em",
        "mot hoc sinh",
        "1 hoc sinh",
        "1 hs",
        "mot hs",
        "one student",
        "a student",
        "single student",
        "mot mui",
        "1 mui",
        "tung mui",
    ),
    "gomgi": (
        "nhung gi",
        "gom nhung gi",
        "gom gi",
        "thong tin gi",
        "can gi",
        "ghi gi",
        "nhung thong tin gi",
        "nhung thong tin nao",
        "what details",
        "what information",
        "what info",
        "which details",
    ),
    "thongtin": ("thong tin", "information", "info", "details", "tt"),
    "hoso": ("ho so", "records"),
    "danhsach": ("danh sach", "list"),
    "dauthanh": (
        "khong dau",
        "co dau",
        "go dau",
        "tieng viet khong dau",
        "dau tieng viet",
        "diacritics",
        "accents",
        "without accents",
        "bo dau",
    ),
    "ngay": ("ngay", "day", "days"),
    "ai": ("ai", "who", "whom"),
}

_VIETNAMESE_STOPWORDS = """
    _ a ae ah ak anh ay ba ban bang bi biet c cac cai cam can cho chi chu chua co con cua cung cx da dang dau
    day de den deu di do duoc dc dk dung e em gi giup ha hay hen hoac hoi hok hong ja j k kg kh khg khi
    khong ko la lai lam len lm luc ma minh mk mn moi mot ms nay nao neu ng nguoi nhe nha nhi nhung nhieu nua
    o oi ok oke on phai r ra roi sao se tai thanks thay the thi toi tren trong tu u uh va vao vay ve voi vs
    vui long xin xem z ad admin
"""
_ENGLISH_STOPWORDS = """
    the an is are am was were be been do does did i we you my our your to of for in on at by with and or
    what which can could must have has it this that there from as if about us get will would
    please ask any some still got one not no yes into after before than then they them he she his her its
"""
STOPWORDS: frozenset[str] = frozenset((_VIETNAMESE_STOPWORDS + _ENGLISH_STOPWORDS).split())

# Telex residue of typing with the Vietnamese keyboard switched off: "tieems" -> "tiem", "vawcs" -> "vac".
_TELEX_MARKS = (("aw", "a"), ("aa", "a"), ("ee", "e"), ("oo", "o"), ("ow", "o"), ("uw", "u"), ("dd", "d"))

_TOKEN = re.compile(r"[a-z0-9]+(?:[._][a-z0-9]+)*")
_WORD = re.compile(r"\w+")
_COMMAND = re.compile(r"(?:(?<=\s)|^)/([a-z][a-z_]*)")
_BARE_COMMAND = re.compile(r"(?<![\w/])(?!cmd_)([a-z]+(?:_[a-z]+)+)")


@cache
def _phrases() -> tuple[re.Pattern[str], dict[str, str]]:
    """One regular expression for every phrase (longest first), and what each phrase becomes."""
    replacement: dict[str, str] = {}
    for canonical, phrases in SYNONYMS.items():
        for phrase in phrases:
            replacement[" ".join(_TOKEN.findall(phrase)) or phrase] = canonical
    ordered = sorted(replacement, key=lambda phrase: (-len(phrase.split()), -len(phrase)))
    pattern = re.compile(r"(?<![a-z0-9_.])(?:" + "|".join(re.escape(p) for p in ordered) + r")(?![a-z0-9_])")
    return pattern, replacement


def _tag_accented(text: str) -> str:
    return _WORD.sub(lambda m: ACCENTED_WORDS.get(m.group(0), m.group(0)), text)


def analyse(text: str, mend: Callable[[str], str] | None = None) -> list[str]:
    """Canonical tokens of a question or entry text, in order, stop-words removed.

    `mend` may replace each folded word before phrases are joined (typo and Telex repair of questions).
    """
    lowered = unicodedata.normalize("NFC", text).lower()
    # A bot command is a token of its own ("/my" is not the English stop-word) and its word as well.
    lowered = _COMMAND.sub(lambda m: f"cmd_{m.group(1)} {m.group(1).replace('_', ' ')}", lowered)
    # A command typed without its slash ("vaccine_round la gi") is still the command.
    lowered = _BARE_COMMAND.sub(lambda m: f"cmd_{m.group(1)} {m.group(1).replace('_', ' ')}", lowered)
    words = _TOKEN.findall(fold(_tag_accented(lowered)))
    if mend is not None:
        words = [mend(word) for word in words]
    pattern, replacement = _phrases()
    canonical = pattern.sub(lambda m: replacement[m.group(0)], " ".join(words))
    # A lone letter is a leftover ("school's"), and a bare number a detail ("15 máy", "lớp 7"): the numbers
    # that matter became tokens above ("1ngay", "15h30", "4.8.1").
    return [
        token
        for token in canonical.split()
        if token not in STOPWORDS and len(token) > 1 and not token.isdigit()
    ]


@cache
def known_words() -> frozenset[str]:
    """Words the normalisation itself knows: stop-words and every word of every synonym phrase."""
    words = set(STOPWORDS)
    for canonical, phrases in SYNONYMS.items():
        words.update(canonical.split())
        for phrase in phrases:
            words.update(_TOKEN.findall(phrase))
    return frozenset(words)


def _bigrams(tokens: Sequence[str]) -> list[str]:
    return [f"{a}+{b}" for a, b in pairwise(tokens) if a != b]


def _telex_readings(word: str) -> list[str]:
    """What a word typed in Telex with the Vietnamese keyboard off may mean: "tieems" -> "tiem".

    The tone key comes last ("vawcs", "hocj"); the marks are doubled letters or a "w" inside the word.
    """
    readings = [word[:-1], word] if word[-1] in "sfrxj" else [word]
    result = []
    for reading in readings:
        for marked, plain in _TELEX_MARKS:
            reading = reading.replace(marked, plain)
        result.append(reading)
    return result


# --- the index -----------------------------------------------------------------------------------


@dataclass
class _Phrasing:
    tokens: frozenset[str]
    text: str  # canonical tokens joined, for rapidfuzz
    norm: float  # length of its IDF vector


@dataclass
class _IndexedEntry:
    entry: FaqEntryOut
    phrase_terms: frozenset[str]  # unigrams and bigrams of the question and its alternatives
    answer_terms: frozenset[str]  # of the answer only
    phrasings: list[_Phrasing] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    entry: FaqEntryOut
    score: float
    coverage: float


# A word only in the answer says less about what the entry answers than one in a phrasing of its question.
ANSWER_TERM_WEIGHT = 0.45
# Weights of the parts of the score (they sum to 1).
COVERAGE_WEIGHT = 0.35
CLOSEST_PHRASING_WEIGHT = 0.30
WORD_PAIRS_WEIGHT = 0.15
FUZZY_WEIGHT = 0.20


class FaqIndex:
    """An immutable index over entries; build a new one when the entries change."""

    def __init__(self, entries: Iterable[FaqEntryOut]) -> None:
        self.entries = list(entries)
        self._indexed: list[_IndexedEntry] = []
        document_frequency: Counter[str] = Counter()
        analysed: list[tuple[list[list[str]], list[str]]] = []
        words = set(known_words())
        for entry in self.entries:
            texts = (entry.question, *entry.alternatives, entry.answer)
            for text in texts:
                words.update(_TOKEN.findall(fold(text)))
            phrasings = [analyse(text) for text in texts[:-1]]
            answer = analyse(entry.answer)
            analysed.append((phrasings, answer))
            terms: set[str] = set()
            for tokens in [*phrasings, answer]:
                terms.update(tokens)
                terms.update(_bigrams(tokens))
            document_frequency.update(terms)
        # Words a question may be mended towards: what the entries and the normalisation tables contain.
        self._words = sorted(word for word in words if len(word) >= 3 and not word.isdigit())
        self._word_set = frozenset(words)
        count = max(len(self.entries), 1)
        self._idf = {term: math.log(1 + count / df) for term, df in document_frequency.items()}
        # A word no entry knows is as informative as the rarest: it lowers the coverage of every entry.
        self._unknown_idf = math.log(1 + count / 0.5)
        for entry, (phrasings, answer) in zip(self.entries, analysed, strict=True):
            phrase_terms: set[str] = set()
            items = []
            for tokens in phrasings:
                unique = frozenset(tokens)
                phrase_terms.update(tokens)
                phrase_terms.update(_bigrams(tokens))
                norm = math.sqrt(sum(self._idf[t] ** 2 for t in unique)) or 1.0
                items.append(_Phrasing(tokens=unique, text=" ".join(tokens), norm=norm))
            answer_terms = (set(answer) | set(_bigrams(answer))) - phrase_terms
            self._indexed.append(
                _IndexedEntry(
                    entry=entry,
                    phrase_terms=frozenset(phrase_terms),
                    answer_terms=frozenset(answer_terms),
                    phrasings=items,
                )
            )

    def idf(self, term: str) -> float:
        return self._idf.get(term, self._unknown_idf)

    def mend(self, word: str) -> str:
        """A known word for an unknown one: Telex residue first, then one wrong, missing or extra letter."""
        if word in self._word_set or len(word) < 3 or not word.isalpha():
            return word
        for reading in _telex_readings(word):
            if reading in self._word_set:
                return reading
        if len(word) >= 5:
            cutoff = 80 if len(word) < 8 else 85
            found = process.extractOne(word, self._words, scorer=fuzz.ratio, score_cutoff=cutoff)
            if found is not None:
                return str(found[0])
        return word

    def terms(self, question: str) -> list[str]:
        """The question's canonical tokens after mending, each once, in order."""
        tokens = analyse(question, self.mend)
        # A class name or code no entry knows ("7a", "79000001") is detail, not a topic.
        return list(dict.fromkeys(t for t in tokens if t in self._idf or not any(ch.isdigit() for ch in t)))

    def search(self, question: str, limit: int = 5) -> list[Candidate]:
        """Entries ranked by score (0..1), best first; empty when the question has no content words."""
        tokens = self.terms(question)
        if not tokens:
            return []
        weight = {token: self.idf(token) for token in tokens}
        mass = sum(weight.values())
        bigrams = [b for b in _bigrams(tokens) if b in self._idf]
        bigram_mass = sum(self._idf[b] for b in bigrams)
        query_norm = math.sqrt(sum(w * w for w in weight.values()))
        query_text = " ".join(tokens)
        candidates = []
        for indexed in self._indexed:
            covered = 0.0
            for token in tokens:
                if token in indexed.phrase_terms:
                    covered += weight[token]
                elif token in indexed.answer_terms:
                    covered += weight[token] * ANSWER_TERM_WEIGHT
            coverage = covered / mass
            if coverage <= 0:
                continue
            pairs = 0.0
            for bigram in bigrams:
                if bigram in indexed.phrase_terms:
                    pairs += self._idf[bigram]
                elif bigram in indexed.answer_terms:
                    pairs += self._idf[bigram] * ANSWER_TERM_WEIGHT
            pair_share = pairs / bigram_mass if bigram_mass else 0.0
            closest = 0.0
            fuzzy = 0.0
            for phrasing in indexed.phrasings:
                shared = sum(weight[t] * self._idf[t] for t in tokens if t in phrasing.tokens)
                closest = max(closest, shared / (query_norm * phrasing.norm))
                fuzzy = max(fuzzy, fuzz.token_sort_ratio(query_text, phrasing.text) / 100)
            score = (
                COVERAGE_WEIGHT * coverage
                + CLOSEST_PHRASING_WEIGHT * closest
                + WORD_PAIRS_WEIGHT * pair_share
                + FUZZY_WEIGHT * fuzzy
            )
            candidates.append(Candidate(entry=indexed.entry, score=round(score, 4), coverage=coverage))
        candidates.sort(key=lambda c: (-c.score, c.entry.key))
        return candidates[:limit]


def is_match(candidate: Candidate | None) -> bool:
    return candidate is not None and candidate.score >= MATCH_THRESHOLD and candidate.coverage >= MIN_COVERAGE


# --- the shipped knowledge base ------------------------------------------------------------------


@cache
def shipped_entries() -> tuple[FaqEntryIn, ...]:
    """The knowledge base shipped in storage/data/faq.yaml, read once."""
    return tuple(parse_knowledge_base(KNOWLEDGE_BASE_PATH.read_bytes()))


def shipped_entry_outs() -> list[FaqEntryOut]:
    return [FaqEntryOut(**entry.model_dump(), source="shipped") for entry in shipped_entries()]
