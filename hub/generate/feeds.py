"""``tsunagu generate``: write the five feeds and consent documents in their real formats, with the truth.

Streams: households are derived from (seed, index) one at a time (:mod:`hub.generate.people`), and
every output is written as it goes (houkatsu day files through a bounded buffer, shogai rows in
batches, the truth's sections through temporary files), so memory stays flat however many
residents are asked for. The same seed and options give the same bytes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from connectors.kodomo import sign_delivery
from hub.generate.people import (
    REFERENCE,
    YEAR_START,
    Household,
    Options,
    Person,
    agency_address,
    agency_birth,
    agency_family,
    agency_family_kana,
    agency_given,
    agency_phone,
    full_kana,
    half_kana,
    hira_kana,
    household,
    join_name,
    padding_households,
    registry_address,
    rng_for,
    wareki,
)

JST = timezone(timedelta(hours=9))
SECRET = b"kodomo-sample-secret"
MUNICIPALITY = "999999"
PRESETS: dict[str, dict[str, int]] = {"prefecture-year": {"residents": 2_000_000, "events_target": 1_000_000}}
HOUKATSU_HEADER = ("センターコード,受付番号,受付日,更新日時,宛名番号,氏名,氏名カナ,生年月日,性別,住所,電話番号,"
                   "世帯状況,相談区分,相談概要,対応状況,つなぎ先,終結日,同居家族")
JIRITSU_HEADER = ("相談受付番号,受付日,更新日,宛名番号,氏名,ふりがな,生年月日,性別,住所,電話,相談経路,紹介元,主訴,"
                  "情報共有同意,同意日,支援状況,終結日")
REGISTRY_HEADER = "宛名番号,世帯番号,続柄,氏名,氏名カナ,生年月日,性別,住所,異動日"
FIELD_OF = {"houkatsu": "elderly", "shogai": "disability", "kodomo": "child", "jiritsu": "livelihood"}
BUFFER_BYTES = 16 * 1024 * 1024


@dataclass
class Counts:
    households: int = 0
    case_households: int = 0
    residents: int = 0
    persons: int = 0
    records: int = 0
    events: dict[str, int] = field(default_factory=lambda: {f: 0 for f in
                                                            ("registry", "houkatsu", "shogai", "kodomo", "jiritsu",
                                                             "consent")})
    bad: int = 0

    @property
    def case_events(self) -> int:
        return sum(v for k, v in self.events.items() if k != "registry")


def _csv(values: list[str]) -> str:
    out = []
    for v in values:
        if "," in v or '"' in v or "\n" in v or "\r" in v:
            v = '"' + v.replace('"', '""') + '"'
        out.append(v)
    return ",".join(out)


def _at(d: date, rng: random.Random) -> datetime:
    return datetime(d.year, d.month, d.day, rng.randint(8, 17), rng.randrange(0, 60, 5), tzinfo=JST)


def _timeline(rng: random.Random, revisions: int) -> list[datetime]:
    """1..revisions change times inside the year, the first on the intake day."""
    start = YEAR_START + timedelta(days=rng.randrange((REFERENCE - YEAR_START).days))
    times = [_at(start, rng)]
    for _ in range(revisions - 1):
        nxt = times[-1].date() + timedelta(days=rng.randint(3, 90))
        if nxt > REFERENCE:
            break
        times.append(_at(nxt, rng))
    return times


class _DayFiles:
    """Rows appended to many per-day files through one bounded buffer (constant memory)."""

    def __init__(self, folder: Path, header: str, *, encoding: str, newline: str, bom: bool = False) -> None:
        self.folder, self.header, self.encoding, self.newline, self.bom = folder, header, encoding, newline, bom
        self.buffers: dict[str, list[str]] = {}
        self.size = 0
        self.created: set[str] = set()
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, line: str) -> None:
        self.buffers.setdefault(name, []).append(line)
        self.size += len(line) * 3
        if self.size > BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        for name in sorted(self.buffers):
            lines = self.buffers[name]
            path = self.folder / name
            with path.open("ab") as f:
                if name not in self.created:
                    self.created.add(name)
                    f.write((("\ufeff" if self.bom else "") + self.header + self.newline).encode(self.encoding))
                f.write("".join(line + self.newline for line in lines).encode(self.encoding))
        self.buffers.clear()
        self.size = 0


class _Truth:
    """The truth's sections written through temporary files, joined into one JSON object at the end."""

    SECTIONS = ("records", "persons", "households")

    def __init__(self, tmp: Path) -> None:
        self.files: dict[str, TextIO] = {s: (tmp / f"{s}.part").open("w", encoding="utf-8") for s in self.SECTIONS}
        self.first = dict.fromkeys(self.SECTIONS, True)
        self.bad: list[dict[str, str]] = []

    def put_raw(self, section: str, entry: str) -> None:
        """Append ``"key": value`` (already JSON) to a section."""
        if self.first[section]:
            self.first[section] = False
            self.files[section].write(entry)
        else:
            self.files[section].write(",\n" + entry)

    def finish(self, path: Path, extra: dict[str, Any]) -> None:
        for f in self.files.values():
            f.close()
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.write("{\n" + f'"reference_date": "{REFERENCE.isoformat()}",\n')
            for section in self.SECTIONS:
                out.write(f'"{section}": {{\n')
                with Path(self.files[section].name).open(encoding="utf-8") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
                out.write("\n},\n")
            out.write('"bad": ' + json.dumps(self.bad, ensure_ascii=False, indent=1) + ",\n")
            out.write('"generator": ' + json.dumps(extra, ensure_ascii=False) + "\n}\n")
        os.replace(tmp, path)


class Generator:
    def __init__(self, out: Path, seed: int, opts: Options, tmp: Path, centres: int) -> None:
        self.out, self.seed, self.opts, self.centres = out, seed, opts, centres
        self.counts = Counts()
        self.truth = _Truth(tmp)
        (out / "registry").mkdir(parents=True, exist_ok=True)
        self.registry = (out / "registry" / "jumin.csv.tmp").open("w", encoding="utf-8", newline="",
                                                                    buffering=1 << 20)
        self.registry.write(REGISTRY_HEADER + "\n")
        self.houkatsu = _DayFiles(out / "houkatsu", HOUKATSU_HEADER, encoding="cp932", newline="\r\n")
        self.jiritsu = _DayFiles(out / "jiritsu", JIRITSU_HEADER, encoding="utf-8", newline="\n", bom=True)
        (out / "kodomo").mkdir(parents=True, exist_ok=True)
        (out / "consent").mkdir(parents=True, exist_ok=True)
        (out / "shogai").mkdir(parents=True, exist_ok=True)
        self.shogai_path = out / "shogai" / "soudan.sqlite.tmp"
        self.db = sqlite3.connect(self.shogai_path)
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE t_riyousha (riyousha_id INTEGER PRIMARY KEY, atena_no TEXT, shimei TEXT NOT NULL,"
            " shimei_kana TEXT, seinengappi TEXT, seibetsu INTEGER, jusho TEXT, tel TEXT, shogai_shubetsu TEXT,"
            " koushin_nichiji TEXT NOT NULL);"
            "CREATE TABLE t_soudan (soudan_id INTEGER PRIMARY KEY, riyousha_id INTEGER NOT NULL, soudan_bi TEXT,"
            " soudan_kubun TEXT, kadai TEXT, joukyou TEXT, tsunagi_saki TEXT, shuuketsu_bi TEXT,"
            " koushin_nichiji TEXT NOT NULL);"
            "CREATE INDEX ix_riyousha_koushin ON t_riyousha (koushin_nichiji, riyousha_id);"
            "CREATE INDEX ix_soudan_koushin ON t_soudan (koushin_nichiji, soudan_id);")
        self.riyousha: list[tuple[Any, ...]] = []
        self.soudan: list[tuple[Any, ...]] = []

    # -- one household ---------------------------------------------------------------------

    def add(self, hh: Household, *, padding: bool = False) -> None:
        c = self.counts
        c.households += 1
        rng = hh.rng or rng_for(self.seed, hh.index)
        if hh.registered:
            self._registry(hh, rng)
        for p in hh.members:  # values hold no quote or backslash: formatted directly, it is the hot path
            atena = f'"{p.atena}"' if p.atena else "null"
            self.truth.put_raw("persons", f'"{p.pid}": {{"household": "{hh.number}", "atena": {atena}, '
                                          f'"rel": "{p.rel}", "birth": "{p.birth.isoformat()}"}}')
        c.persons += len(hh.members)
        members = ", ".join(f'"{p.pid}"' for p in hh.members)
        agencies = ", ".join(f'"{a}"' for a in sorted(hh.agencies))
        self.truth.put_raw("households", f'"{hh.number}": {{"kind": "{hh.kind}", "members": [{members}], '
                                         f'"registered": {"true" if hh.registered else "false"}, '
                                         f'"agencies": [{agencies}]}}')
        if padding:
            return
        c.case_households += 1
        consent_fields: dict[int, set[str]] = {}
        for feed in ("houkatsu", "shogai", "kodomo", "jiritsu"):
            if feed in hh.agencies:
                subjects = getattr(self, f"_{feed}")(hh, rng)
                for n in subjects:
                    consent_fields.setdefault(n, set()).add(FIELD_OF[feed])
        for n, fields in sorted(consent_fields.items()):
            if hh.members[n].atena and rng.random() < 0.5:
                self._consent(hh, n, sorted(fields), rng)

    def record(self, key: str, p: Person) -> None:
        self.truth.put_raw("records", f'"{key}": "{p.pid}"')
        self.counts.records += 1

    def _registry(self, hh: Household, rng: random.Random) -> None:
        addr = registry_address(hh.address)
        moved = (REFERENCE - timedelta(days=rng.randrange(3650))).isoformat()
        lines = []
        for p in hh.members:
            assert p.atena is not None
            lines.append(f"{p.atena},{hh.number},{p.rel},{p.registry_family}\u3000{p.registry_given},"
                         f"{p.family_kana}\u3000{p.given_kana},{p.birth.isoformat()},{p.sex},{addr},{moved}\n")
            self.record(f"registry:{p.atena}", p)
        self.registry.write("".join(lines))
        self.counts.residents += len(hh.members)
        self.counts.events["registry"] += len(hh.members)

    # -- houkatsu --------------------------------------------------------------------------

    def _houkatsu(self, hh: Household, rng: random.Random) -> list[int]:
        subject_n = max(range(len(hh.members)), key=lambda n: (REFERENCE - hh.members[n].birth).days)
        subject = hh.members[subject_n]
        centre = f"C{1 + (hh.address[1] * 7 + hh.address[2]) % self.centres:02d}"
        times = _timeline(rng, rng.choice((1, 2, 2, 3)))
        case_no = f"{times[0].year}-{hh.index:08d}"
        key = f"houkatsu:{centre}-{case_no}"
        self.record(key, subject)
        family_entries = []
        n_entry = 0
        for n, p in enumerate(hh.members):
            if n == subject_n:
                continue
            n_entry += 1
            rel = _relation_to(subject, p)
            name = join_name(agency_family(p, rng), agency_given(p, rng), rng)
            family_entries.append(f"{rel}:{name}:{wareki(agency_birth(p), rng)}:{p.notes}")
            self.record(f"{key}:family:{n_entry}", p)
        situation = {"elderly_single": "独居", "elderly_couple": "高齢者のみ世帯",
                     "p8050": "子と同居"}.get(hh.kind, "その他")
        topics = {"elderly_single": "介護保険;認知症", "elderly_couple": "介護保険", "p8050": "家族の問題;生活困窮",
                  "double_care": "介護保険;家族の問題"}.get(hh.kind, "その他")
        fam = agency_family(subject, rng)
        name = join_name(fam, agency_given(subject, rng), rng)
        kana = half_kana(agency_family_kana(subject, fam), subject.given_kana, rng)
        birth = wareki(agency_birth(subject), rng)
        atena = subject.atena if subject.atena and rng.random() < 0.4 else ""
        address, phone = agency_address(hh.address, rng), agency_phone(hh.phone, rng)
        members = "／".join(family_entries)
        for i, t in enumerate(times):
            last = i == len(times) - 1
            status, to, closed = "対応中", "", ""
            if i > 0:
                status = "継続支援"
            if last and i > 0:
                roll = rng.random()
                if roll < 0.35:
                    status, closed = "終結", wareki(t.date(), rng)
                elif roll < 0.6 and hh.kind in ("p8050", "double_care"):
                    status = "他機関へつなぎ"
                    to = "自立相談" if hh.kind == "p8050" else "こども家庭センター"
            row = [centre, case_no, wareki(times[0].date(), rng), t.strftime("%Y/%m/%d %H:%M"), atena, name, kana,
                   birth, "男" if subject.sex == 1 else "女", address, phone, situation, topics,
                   "本人・家族より相談。状況を確認し支援を継続。", status, to, closed, members]
            self.houkatsu.add(f"{centre}_soudan_{t:%Y%m%d}.csv", _csv(row))
            self.counts.events["houkatsu"] += 2 if to else 1
        return [subject_n]

    # -- shogai ----------------------------------------------------------------------------

    def _shogai(self, hh: Household, rng: random.Random) -> list[int]:
        n = _shogai_subject(hh)
        p = hh.members[n]
        rid = hh.index * 8 + n + 1
        times = _timeline(rng, rng.choice((1, 2, 3)))
        birth = agency_birth(p)
        seinengappi = birth.strftime("%Y%m%d") if rng.random() < 0.2 else birth.isoformat()
        kinds = {"young_carer": "精神", "disabled_child": "知的,発達", "p8050": "精神"}.get(hh.kind, "身体")
        fam = agency_family(p, rng)
        name = join_name(fam, agency_given(p, rng), rng)
        self.riyousha.append((rid, p.atena if p.atena and rng.random() < 0.5 else None, name,
                              full_kana(agency_family_kana(p, fam), p.given_kana, rng),
                              seinengappi, p.sex, agency_address(hh.address, rng), agency_phone(hh.phone, rng),
                              kinds, times[0].strftime("%Y-%m-%d %H:%M:00")))
        self.record(f"shogai:{rid}", p)
        last = times[-1]
        status = "受付" if len(times) == 1 else ("終結" if rng.random() < 0.3 else "支援中")
        kadai = {"young_carer": "家族関係,介護", "p8050": "ひきこもり,経済",
                 "disabled_child": "子育て"}.get(hh.kind, "就労")
        self.soudan.append((hh.index * 4 + 1, rid, times[0].date().isoformat(), "基本相談", kadai, status, None,
                            last.date().isoformat() if status == "終結" else None, last.strftime("%Y-%m-%d %H:%M:00")))
        self.counts.events["shogai"] += 2
        if len(self.riyousha) >= 10_000:
            self._flush_shogai()
        return [n]

    def _flush_shogai(self) -> None:
        self.db.executemany("INSERT INTO t_riyousha VALUES (?,?,?,?,?,?,?,?,?,?)", self.riyousha)
        self.db.executemany("INSERT INTO t_soudan VALUES (?,?,?,?,?,?,?,?,?)", self.soudan)
        self.riyousha.clear()
        self.soudan.clear()

    # -- kodomo ----------------------------------------------------------------------------

    def _kodomo(self, hh: Household, rng: random.Random) -> list[int]:
        children = [n for n, p in enumerate(hh.members) if (REFERENCE - p.birth).days < 18 * 365]
        guardians = [n for n, p in enumerate(hh.members) if p.rel in ("世帯主", "妻") and n not in children]
        if not children:
            return []
        times = _timeline(rng, rng.choice((1, 2, 3)))
        kiroku = f"K{times[0].year}-{hh.index:08d}"
        topics = {"young_carer": ["ヤングケアラー"], "double_care": ["養育相談"], "disabled_child": ["発達"]}.get(
            hh.kind, [rng.choice(("養育相談", "不登校", "経済的困窮", "その他"))])

        def person(n: int) -> dict[str, Any]:
            p = hh.members[n]
            fam = agency_family(p, rng)
            return {"taishosha_no": f"T{hh.index:08d}{n}", "atena_no": p.atena if p.atena and rng.random() < 0.6
                    else None, "shimei": join_name(fam, agency_given(p, rng), rng),
                    "kana": full_kana(agency_family_kana(p, fam), p.given_kana, rng),
                    "seinengappi": agency_birth(p).isoformat()}

        kids = []
        for n in children:
            d = person(n)
            d["seibetsu"] = "男" if hh.members[n].sex == 1 else "女"
            kids.append(d)
        parents = []
        for n in guardians:
            d = person(n)
            d["zokugara"] = "父" if hh.members[n].sex == 1 else "母"
            parents.append(d)
        for n in children + guardians:
            self.record(f"kodomo:T{hh.index:08d}{n}", hh.members[n])
        for i, t in enumerate(times):
            last = i == len(times) - 1
            closed = last and i > 0 and rng.random() < 0.4
            body = {"event": "record.closed" if closed else ("record.created" if i == 0 else "record.updated"),
                    "record": {"kiroku_id": kiroku, "setai_no": hh.number if hh.registered else None,
                               "koushin": t.isoformat(), "uketsuke_bi": times[0].date().isoformat(),
                               "joukyou": "終結" if closed else ("受付" if i == 0 else "支援中"),
                               "soudan_naiyou": topics, "kodomo": kids, "hogosha": parents,
                               "shuuketsu_bi": t.date().isoformat() if closed else None}}
            self._delivery(f"d-{t:%Y%m%d%H%M}-{hh.index:08d}-{i}", t, json.dumps(body, ensure_ascii=False))
            self.counts.events["kodomo"] += len(kids)
        return children

    def _delivery(self, delivery_id: str, t: datetime, body: str, *, signature: str | None = None) -> None:
        stamp = str(int(t.timestamp()))
        headers = {"X-Delivery-Id": delivery_id, "X-Timestamp": stamp,
                   "X-Signature": signature or sign_delivery(SECRET, delivery_id, stamp, body.encode("utf-8")),
                   "Content-Type": "application/json"}
        _write(self.out / "kodomo" / f"{delivery_id}.json",
               json.dumps({"headers": headers, "body": body}, ensure_ascii=False))

    # -- jiritsu ---------------------------------------------------------------------------

    def _jiritsu(self, hh: Household, rng: random.Random) -> list[int]:
        n = _jiritsu_subject(hh)
        p = hh.members[n]
        times = _timeline(rng, rng.choice((1, 2, 3)))
        case_no = f"J{times[0].year % 100:02d}-{hh.index:08d}"
        self.record(f"jiritsu:{case_no}", p)
        fam = agency_family(p, rng)
        name = join_name(fam, agency_given(p, rng), rng)
        kana = hira_kana(agency_family_kana(p, fam), p.given_kana, rng)
        consent = rng.random() < 0.6
        route = rng.choice(("本人来所", "電話", "家族・知人", "関係機関からの紹介", "訪問"))
        source = rng.choice(("地域包括", "民生委員", "社会福祉協議会")) if route == "関係機関からの紹介" else ""
        topic = {"p8050": "ひきこもり・不登校|収入・生活費", "young_carer": "家族との関係|介護"}.get(
            hh.kind, rng.choice(("収入・生活費", "仕事探し・就職|住まい", "債務")))
        atena = p.atena if p.atena and rng.random() < 0.3 else ""
        address, phone = agency_address(hh.address, rng), agency_phone(hh.phone, rng)
        sex = "男性" if p.sex == 1 else "女性"
        opened = times[0].strftime("%Y/%m/%d")
        steps = ("インテーク", "アセスメント", "プラン作成", "支援中")
        for i, t in enumerate(times):
            last = i == len(times) - 1
            status = steps[min(i, 3)]
            closed = ""
            if last and i > 0 and rng.random() < 0.3:
                status, closed = "終結", t.strftime("%Y/%m/%d")
            row = [case_no, opened, t.strftime("%Y/%m/%d"), atena, name, kana, agency_birth(p).strftime("%Y/%m/%d"),
                   sex, address, phone, route, source, topic, "1" if consent else "0", opened if consent else "",
                   status, closed]
            self.jiritsu.add(f"jiritsu_{t:%Y%m}.csv", _csv(row))
            self.counts.events["jiritsu"] += 2 if consent else 1
        return [n]

    # -- consent ---------------------------------------------------------------------------

    def _consent(self, hh: Household, n: int, fields: list[str], rng: random.Random) -> None:
        p = hh.members[n]
        cid = f"consent-{hh.index:08d}-{n}"
        start = (YEAR_START + timedelta(days=rng.randrange(300))).isoformat()
        child = (REFERENCE - p.birth).days < 18 * 365
        doc = _fhir_consent(cid, p.atena or "", start, start, fields, "親権者" if child else "本人", "active")
        _write(self.out / "consent" / f"{cid}.json", json.dumps(doc, ensure_ascii=False))
        self.counts.events["consent"] += 1
        if rng.random() < 0.05:
            end = (date.fromisoformat(start) + timedelta(days=rng.randint(20, 60))).isoformat()
            doc = _fhir_consent(cid, p.atena or "", end, start, fields, "親権者" if child else "本人", "inactive",
                                end=end)
            _write(self.out / "consent" / f"{cid}.withdrawn.json", json.dumps(doc, ensure_ascii=False))
            self.counts.events["consent"] += 1

    # -- planted bad rows --------------------------------------------------------------------

    def plant_bad(self, count: int) -> None:
        """``count`` rows of each kind that must become dead letters, listed in the truth's ``bad``."""
        rng = random.Random(self.seed ^ 0xBAD)
        t = datetime(2025, 9, 1, 10, 0, tzinfo=JST)
        for k in range(count):
            centre = "C01"
            base = [centre, f"9999-{k:04d}", "R7.9.1", "2025/09/01 10:00", "", "鳩羽　一郎", "ﾊﾄﾊﾞ ｲﾁﾛｳ", "S23.02.31",
                    "男", "中央1-1-1", "", "独居", "その他", "", "対応中", "", "", ""]
            self.houkatsu.add(f"{centre}_soudan_{t:%Y%m%d}.csv", _csv(base))
            self._bad("houkatsu", f"houkatsu:{centre}-9999-{k:04d}", "impossible date in 生年月日", "生年月日")
            empty = [*base]
            empty[1], empty[5], empty[7] = f"9998-{k:04d}", "", "S23.02.03"
            self.houkatsu.add(f"{centre}_soudan_{t:%Y%m%d}.csv", _csv(empty))
            self._bad("houkatsu", f"houkatsu:{centre}-9998-{k:04d}", "empty name", "氏名")
            rid = 9_000_000_000 + k
            self.riyousha.append((rid, None, "鳩羽　二郎", "ハトバ　ジロウ", "1950-02-30", 7, "中央1-1-1", None, "身体",
                                  "2025-09-01 10:00:00"))
            self._bad("shogai", f"shogai:{rid}", "impossible date in seinengappi; unknown code in seibetsu",
                      "seinengappi")
            body = json.dumps({"event": "record.created", "record": {
                "kiroku_id": f"K2025-9999{k:04d}", "setai_no": None, "koushin": t.isoformat(),
                "uketsuke_bi": "2025-09-01", "joukyou": "受付", "soudan_naiyou": ["その他"],
                "kodomo": [{"taishosha_no": f"T9999{k:04d}", "atena_no": None, "shimei": "鳩羽　三郎",
                            "kana": "ハトバ　サブロウ", "seinengappi": "2015-04-01", "seibetsu": "男"}],
                "hogosha": [], "shuuketsu_bi": None}}, ensure_ascii=False)
            delivery = f"d-bad-{k:04d}"
            self._delivery(delivery, t, body, signature="sha256=" + f"{rng.getrandbits(256):064x}")
            self.truth.bad.append({"source": "kodomo", "record": f"kodomo:T9999{k:04d}", "delivery": delivery,
                                   "why": "bad signature"})
            self.counts.bad += 1
            row = [f"J25-9999{k:04d}", "2025/09/01", "2025/09/01", "", "鳩羽　四郎", "はとば　しろう", "1960/13/01",
                   "男性", "中央1-1-1", "", "電話", "", "債務", "0", "", "インテーク", ""]
            self.jiritsu.add("jiritsu_202509.csv", _csv(row))
            self._bad("jiritsu", f"jiritsu:J25-9999{k:04d}", "impossible date in 生年月日", "生年月日")

    def _bad(self, source: str, record: str, why: str, column: str) -> None:
        """``why`` is the connector's dead-letter reason, word for word."""
        self.truth.bad.append({"source": source, "record": record, "why": why, "column": column})
        self.counts.bad += 1

    def close(self) -> None:
        self.houkatsu.flush()
        self.jiritsu.flush()
        self._flush_shogai()
        self.db.commit()
        self.db.close()
        os.replace(self.shogai_path, self.out / "shogai" / "soudan.sqlite")
        self.registry.close()
        os.replace(self.out / "registry" / "jumin.csv.tmp", self.out / "registry" / "jumin.csv")


def _write(path: Path, text: str) -> None:
    """One small file, written with as few system calls as can be (hundreds of thousands of them)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _relation_to(subject: Person, p: Person) -> str:
    if subject.rel == "世帯主":
        child = "長男" if p.sex == 1 else "長女"
        return {"妻": "妻", "夫": "夫", "子": child, "母": "母", "父": "父"}.get(p.rel, "同居人")
    if subject.rel == "母":  # the head's mother: the head is her son, his children her grandchildren
        return {"世帯主": "長男", "子": "孫"}.get(p.rel, "同居人")
    return "同居人"


def _shogai_subject(hh: Household) -> int:
    want = {"p8050": "子", "disabled_child": "子", "young_carer": "世帯主"}.get(hh.kind, "世帯主")
    return next((n for n, p in enumerate(hh.members) if p.rel == want), 0)


def _jiritsu_subject(hh: Household) -> int:
    return _shogai_subject(hh) if hh.kind == "p8050" else 0


def _fhir_consent(cid: str, atena: str, recorded: str, start: str, fields: list[str], grantor: str, status: str,
                  end: str | None = None) -> dict[str, Any]:
    role = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
    actors: list[dict[str, Any]] = [{"role": {"coding": [{"system": role, "code": "IRCP"}]},
                                     "reference": {"display": "重層的支援会議"}}]
    actors += [{"role": {"coding": [{"system": role, "code": "CST"}]},
                "reference": {"identifier": {"system": "urn:jp:tsunagu:field", "value": f}}} for f in fields]
    period = {"start": start, **({"end": end} if end else {})}
    return {"resourceType": "Consent", "id": cid, "status": status, "date": recorded,
            "subject": {"identifier": {"system": f"urn:jp:lg:{MUNICIPALITY}:resident-no", "value": atena}},
            "grantor": [{"display": grantor}], "decision": "permit", "period": period,
            "provision": [{"actor": actors,
                           "purpose": [{"system": "urn:jp:tsunagu:purpose", "code": "multi-agency-support"}]}]}


@dataclass(frozen=True)
class Plan:
    households: int | None = None
    residents: int = 0
    events_target: int | None = None


def generate(out: Path, seed: int, plan: Plan, opts: Options = Options(),
             progress: TextIO | None = None) -> dict[str, Any]:
    """Write the feeds under ``out`` (which must not hold feeds yet) and ``out/truth.json``; returns counts."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    if any((out / d).exists() for d in ("registry", "houkatsu", "shogai", "kodomo", "jiritsu", "consent")):
        raise FileExistsError("output folder already holds feeds")
    target_hh = plan.households
    if target_hh is None and plan.events_target is None:
        target_hh = 100
    centres = max(3, min(60, (plan.events_target or (target_hh or 0) * 3) // 15_000 or 3))
    with tempfile.TemporaryDirectory(prefix="tsunagu-gen-", dir=out) as tmp:
        g = Generator(out, seed, opts, Path(tmp), centres)
        index = 0
        for hh in _case_households(seed, opts, target_hh, plan.events_target, g.counts):
            g.add(hh)
            index = hh.index + 1
            if progress is not None and index % 50_000 == 0:
                progress.write(f"\r[{time.monotonic() - started:6.1f}s] households {index}  ")
        g.plant_bad(1 + g.counts.case_households // 500)
        pad = padding_households(seed, index, opts)
        while g.counts.residents < plan.residents:
            g.add(next(pad), padding=True)
            index += 1
            if progress is not None and index % 100_000 == 0:
                progress.write(f"\r[{time.monotonic() - started:6.1f}s] residents {g.counts.residents}  ")
        g.close()
        summary = {"seed": seed, "options": asdict(opts), **asdict(g.counts), "case_events": g.counts.case_events}
        g.truth.finish(out / "truth.json", summary)  # no clock in the truth: same seed, same bytes
        summary["seconds"] = round(time.monotonic() - started, 1)
    if progress is not None:
        progress.write("\n")
    return summary


def _case_households(seed: int, opts: Options, households: int | None, events_target: int | None,
                     counts: Counts) -> Iterator[Household]:
    index = 0
    while True:
        if households is not None and index >= households:
            return
        if households is None and events_target is not None and counts.case_events >= events_target:
            return
        yield household(seed, index, opts)
        index += 1
