"""How a ranking agrees with pairwise labels: ``phudge evaluate --ranking`` on a set of pairs.

The pairs of a relative benchmark that share an instruction (and rubric, reference and
context) are answers to one question: HHH's 221 pairs hold 258 distinct answers to 102
instructions, 42 of them with 3 to 6 answers. Each group is ranked once (every distinct
answer graded once), and each labelled pair is then read off its group's ranking: right when
the better answer has the strictly better rank (a shared rank, like a missing score, is wrong,
as in the strict pair accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datamodules.records import Record, rubric_text
from phudge_lightning.judge import Grade
from phudge_lightning.rank.ranking import Ranking, rank_grades


@dataclass
class Groups:
    """The distinct answers of each group (``answers[g]``) and, per pair, (group, index of
    ``a``, index of ``b``) in that group."""

    answers: list[list[Record]] = field(default_factory=list)
    places: list[tuple[int, int, int]] = field(default_factory=list)

    def records(self) -> list[Record]:
        """Every distinct answer once, group after group: what the judge grades."""
        return [r for group in self.answers for r in group]


def group_pairs(pairs) -> Groups:
    """Group ``pairs`` (``benchmarks.Pair``) by what their two records share but the response."""
    groups, keys, seen = Groups(), {}, []
    for pair in pairs:
        key = (pair.a.instruction, rubric_text(pair.a.rubric), pair.a.reference_answer, pair.a.context)
        if key not in keys:
            keys[key] = len(groups.answers)
            groups.answers.append([])
            seen.append({})
        g = keys[key]
        indices = []
        for record in (pair.a, pair.b):
            if record.response not in seen[g]:
                seen[g][record.response] = len(groups.answers[g])
                groups.answers[g].append(record)
            indices.append(seen[g][record.response])
        groups.places.append((g, *indices))
    return groups


def rank_groups(groups: Groups, scores: list[float | None]) -> list[Ranking]:
    """Each group's ranking from the scores of ``groups.records()``, in that order."""
    rankings, start = [], 0
    for answers in groups.answers:
        rankings.append(rank_grades([Grade(score=s) for s in scores[start:start + len(answers)]]))
        start += len(answers)
    return rankings


def pair_scores(groups: Groups, scores: list[float | None]) -> list[float | None]:
    """The scores of ``a`` then ``b`` of each pair (``Benchmark.records()``'s order), from the
    scores of the distinct answers."""
    offsets = [0]
    for answers in groups.answers[:-1]:
        offsets.append(offsets[-1] + len(answers))
    return [scores[offsets[g] + i] for g, a, b in groups.places for i in (a, b)]


def ranking_agreement(labels: list[str], groups: Groups, rankings: list[Ranking]) -> dict:
    """Pairs read off the rankings.

    - ``ranking_agreement`` = #{label A and rank(a) < rank(b), or label B and rank(b) < rank(a)}
      / n, over the ``n`` pairs not labelled tie (rank 1 is the best);
    - ``rankings``: the groups ranked; ``answers_ranked``: the distinct answers graded (against
      2 per pair, ``pair_grades``, when the pairs are graded one by one);
    - ``rankings_of_3_or_more`` and, of those, ``rankings_in_full_agreement``: the share whose
      every labelled pair is read off right (the whole order agrees, not just most pairs).
    """
    rank_of = [{a.index: a.rank for a in ranking.answers} for ranking in rankings]
    right_by_group: dict[int, list[bool]] = {}
    for label, (g, a, b) in zip(labels, groups.places):
        if label == "tie":
            continue
        first, second = (a, b) if label == "A" else (b, a)
        better, worse = rank_of[g][first], rank_of[g][second]
        right_by_group.setdefault(g, []).append(better is not None and worse is not None and better < worse)
    verdicts = [v for vs in right_by_group.values() for v in vs]
    large = [g for g, answers in enumerate(groups.answers) if len(answers) >= 3 and g in right_by_group]
    return {
        "ranking_agreement": sum(verdicts) / len(verdicts) if verdicts else None,
        "ranking_pairs": len(verdicts),
        "rankings": len(rankings),
        "answers_ranked": sum(len(answers) for answers in groups.answers),
        "pair_grades": 2 * len(groups.places),
        "rankings_of_3_or_more": len(large),
        "rankings_in_full_agreement": (sum(all(right_by_group[g]) for g in large) / len(large)) if large else None,
    }
