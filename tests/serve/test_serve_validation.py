"""Request validation: every bad input gets one sentence naming the fault; good input passes."""

from __future__ import annotations

import numpy as np
import pytest

from ltr.errors import InputError
from ltr.serve.domain import ModelRef, ModelSpec, RerankQuery, TextQuery, ValidQuery
from ltr.serve.errors import TextNotServedError, UnknownModelError
from ltr.serve.scoring import featurize
from ltr.serve.validation import validate, validate_text

SPEC = ModelSpec(ModelRef("m", "3"), feature_names=("a", "b", "c"))


def query(n: int = 4, f: int = 3, **kw) -> RerankQuery:
    rng = np.random.default_rng(0)
    ids = kw.pop("ids", [f"d{i}" for i in range(n)])
    return RerankQuery.from_matrix(ids, rng.random((n, f), dtype=np.float32), **kw)


def test_a_good_query_becomes_a_matrix_per_candidate() -> None:
    q = query(top_k=2, query_id="q1")
    valid = validate(q, SPEC, max_candidates=10)
    np.testing.assert_array_equal(valid.features, q.features.reshape(4, 3))
    assert valid.candidate_ids == ["d0", "d1", "d2", "d3"]
    assert (valid.query_id, valid.top_k, valid.context, valid.initial_ranks) == (
        "q1",
        2,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: query(0), "no candidates"),
        (lambda: query(11), "11 candidates but this server accepts at most 10"),
        (lambda: query(ids=["a", "b", "a", "c"]), "'a' appears more than once"),
        (lambda: query(ids=["a", "", "b", "c"]), "candidate 1 has an empty id"),
        (lambda: query(f=2), "'d0' has 2 features but the model expects 3"),
        (lambda: query(top_k=0), "top_k must be at least 1"),
        (lambda: query(context=np.ones(2)), "takes no context vector but 2 values"),
    ],
)
def test_bad_queries_are_input_errors(make, fragment) -> None:
    with pytest.raises(InputError, match=fragment) as info:
        validate(make(), SPEC, max_candidates=10)
    assert str(info.value).count(". ") == 0  # one sentence


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_the_candidate_and_feature(value) -> None:
    q = query()
    q.features[1 * 3 + 2] = value  # candidate d1, feature "c"
    with pytest.raises(InputError, match=r"'d1' has a non-finite value .* for feature 'c'"):
        validate(q, SPEC, max_candidates=10)


def test_ragged_feature_vectors_name_the_first_wrong_candidate() -> None:
    q = query()
    counts = np.array([3, 3, 4, 2])  # same total as 4 x 3
    ragged = RerankQuery("q", q.candidate_ids, q.features, counts)
    with pytest.raises(InputError, match="'d2' has 4 features"):
        validate(ragged, SPEC, max_candidates=10)


def test_another_models_name_is_unknown() -> None:
    with pytest.raises(UnknownModelError, match="'other' is not served here; it serves 'm'"):
        validate(query(model_name="other"), SPEC, max_candidates=10)
    assert validate(query(model_name="m"), SPEC, max_candidates=10).candidate_ids


def test_initial_ranks_only_for_models_that_use_them() -> None:
    q = query(initial_ranks=np.array([4, 3, 2, 1]))
    assert validate(q, SPEC, max_candidates=10).initial_ranks is None
    uses = ModelSpec(ModelRef("m", "1"), ("a", "b", "c"), uses_initial_rank=True)
    np.testing.assert_array_equal(validate(q, uses, max_candidates=10).initial_ranks, [4, 3, 2, 1])
    unknown = validate(query(), uses, max_candidates=10).initial_ranks
    np.testing.assert_array_equal(unknown, [0, 0, 0, 0])  # 0 = unknown rank


def test_context_must_match_the_models_size_and_be_finite() -> None:
    spec = ModelSpec(ModelRef("m", "1"), ("a", "b", "c"), context_dim=2)
    ok = validate(query(context=np.array([0.5, -1.0])), spec, max_candidates=10)
    np.testing.assert_array_equal(ok.context, np.array([0.5, -1.0], dtype=np.float32))
    with pytest.raises(InputError, match="needs a context vector of 2 values but 0 were sent"):
        validate(query(), spec, max_candidates=10)
    with pytest.raises(InputError, match="context vector has a non-finite value"):
        validate(query(context=np.array([np.nan, 1.0])), spec, max_candidates=10)


TEXT_SPEC = ModelSpec(ModelRef("m", "3"), feature_names=("a", "b"), accepts_text=True)


def text_query(n: int = 3, **kw) -> TextQuery:
    ids = kw.pop("ids", [f"d{i}" for i in range(n)])
    texts = kw.pop("texts", [f"text {i}" for i in range(len(ids))])
    return TextQuery(kw.pop("query_id", "q"), kw.pop("query", "a query"), ids, texts, **kw)


def test_a_good_text_query_passes_whole() -> None:
    valid = validate_text(text_query(top_k=2, texts=["x", "", "y"]), TEXT_SPEC, max_candidates=5)
    assert (valid.query, valid.candidate_ids, valid.texts, valid.top_k) == (
        "a query",
        ["d0", "d1", "d2"],
        ["x", "", "y"],  # an empty document is a document
        2,
    )


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: text_query(query=" \n"), "the query text is empty"),
        (lambda: text_query(0), "no candidates"),
        (lambda: text_query(6), "6 candidates but this server accepts at most 5"),
        (lambda: text_query(texts=["a", "b"]), "2 texts were sent for 3 candidates"),
        (lambda: text_query(ids=["a", "b", "a"]), "'a' appears more than once"),
        (lambda: text_query(ids=["a", ""]), "candidate 1 has an empty id"),
        (lambda: text_query(top_k=0), "top_k must be at least 1"),
    ],
)
def test_bad_text_queries_are_input_errors(make, fragment) -> None:
    with pytest.raises(InputError, match=fragment) as info:
        validate_text(make(), TEXT_SPEC, max_candidates=5)
    assert str(info.value).count(". ") == 0


def test_text_needs_a_model_with_a_featurizer_and_the_right_name() -> None:
    with pytest.raises(TextNotServedError, match=r"without a text featurizer.*call Rerank"):
        validate_text(text_query(), SPEC, max_candidates=5)
    with pytest.raises(UnknownModelError, match="'other' is not served here"):
        validate_text(text_query(model_name="other"), TEXT_SPEC, max_candidates=5)


class _Rows:
    """A stand-in featurizer: row k of a list is (k, len(query)), so each value says where it
    came from."""

    def list_features(self, queries, lists):
        return [
            np.array([[k, len(q)] for k in range(len(t))], float)
            for q, t in zip(queries, lists, strict=True)
        ]


def test_featurize_turns_text_lists_into_feature_lists_in_place() -> None:
    feature_list = validate(
        query(2, 2), ModelSpec(ModelRef("m", "3"), ("a", "b")), max_candidates=5
    )
    text_list = validate_text(text_query(3, query="four"), TEXT_SPEC, max_candidates=5)
    ranked_spec = ModelSpec(ModelRef("m", "3"), ("a", "b"), uses_initial_rank=True)
    out = featurize(_Rows(), ranked_spec, [text_list, feature_list])
    assert out[1] is feature_list
    assert isinstance(out[0], ValidQuery)
    np.testing.assert_array_equal(out[0].features, [[0, 4], [1, 4], [2, 4]])
    np.testing.assert_array_equal(out[0].initial_ranks, [1, 2, 3])  # the list's own order
    assert out[0].features.dtype == np.float32 and out[0].context is None
    assert featurize(_Rows(), TEXT_SPEC, [text_list])[0].initial_ranks is None
    # a model swapped in meanwhile without a featurizer fails the text lists only
    out = featurize(None, TEXT_SPEC, [text_list, feature_list])
    assert isinstance(out[0], TextNotServedError) and out[1] is feature_list
