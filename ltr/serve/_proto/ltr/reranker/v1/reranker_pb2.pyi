from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_UNSPECIFIED: _ClassVar[Backend]
    BACKEND_ONNX_RUNTIME: _ClassVar[Backend]
    BACKEND_PYTORCH: _ClassVar[Backend]
BACKEND_UNSPECIFIED: Backend
BACKEND_ONNX_RUNTIME: Backend
BACKEND_PYTORCH: Backend

class Candidate(_message.Message):
    __slots__ = ("id", "features", "initial_rank")
    ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    INITIAL_RANK_FIELD_NUMBER: _ClassVar[int]
    id: str
    features: _containers.RepeatedScalarFieldContainer[float]
    initial_rank: int
    def __init__(self, id: _Optional[str] = ..., features: _Optional[_Iterable[float]] = ..., initial_rank: _Optional[int] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("query_id", "candidates", "top_k", "context", "model_name")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    top_k: int
    context: _containers.RepeatedScalarFieldContainer[float]
    model_name: str
    def __init__(self, query_id: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., top_k: _Optional[int] = ..., context: _Optional[_Iterable[float]] = ..., model_name: _Optional[str] = ...) -> None: ...

class RankedCandidate(_message.Message):
    __slots__ = ("id", "score", "request_index")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_INDEX_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    request_index: int
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., request_index: _Optional[int] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("query_id", "candidates", "model", "impression_id", "challenger")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMPRESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[RankedCandidate]
    model: ModelRef
    impression_id: str
    challenger: ModelRef
    def __init__(self, query_id: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[RankedCandidate, _Mapping]]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., impression_id: _Optional[str] = ..., challenger: _Optional[_Union[ModelRef, _Mapping]] = ...) -> None: ...

class RerankBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RerankRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RerankRequest, _Mapping]]] = ...) -> None: ...

class RerankBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[RerankResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[RerankResponse, _Mapping]]] = ...) -> None: ...

class TextCandidate(_message.Message):
    __slots__ = ("id", "text")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class RerankTextRequest(_message.Message):
    __slots__ = ("query_id", "query", "candidates", "top_k", "model_name")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query: str
    candidates: _containers.RepeatedCompositeFieldContainer[TextCandidate]
    top_k: int
    model_name: str
    def __init__(self, query_id: _Optional[str] = ..., query: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[TextCandidate, _Mapping]]] = ..., top_k: _Optional[int] = ..., model_name: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model", "num_features", "feature_names", "max_candidates", "backend", "uses_initial_rank", "context_dim", "max_message_bytes", "context_columns", "accepts_text", "challenger")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NUM_FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    USES_INITIAL_RANK_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_DIM_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_TEXT_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_FIELD_NUMBER: _ClassVar[int]
    model: ModelRef
    num_features: int
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    max_candidates: int
    backend: Backend
    uses_initial_rank: bool
    context_dim: int
    max_message_bytes: int
    context_columns: _containers.RepeatedScalarFieldContainer[str]
    accepts_text: bool
    challenger: ModelRef
    def __init__(self, model: _Optional[_Union[ModelRef, _Mapping]] = ..., num_features: _Optional[int] = ..., feature_names: _Optional[_Iterable[str]] = ..., max_candidates: _Optional[int] = ..., backend: _Optional[_Union[Backend, str]] = ..., uses_initial_rank: _Optional[bool] = ..., context_dim: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., context_columns: _Optional[_Iterable[str]] = ..., accepts_text: _Optional[bool] = ..., challenger: _Optional[_Union[ModelRef, _Mapping]] = ...) -> None: ...

class Click(_message.Message):
    __slots__ = ("impression_id", "candidate_id")
    IMPRESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    impression_id: str
    candidate_id: str
    def __init__(self, impression_id: _Optional[str] = ..., candidate_id: _Optional[str] = ...) -> None: ...

class RecordClicksRequest(_message.Message):
    __slots__ = ("clicks",)
    CLICKS_FIELD_NUMBER: _ClassVar[int]
    clicks: _containers.RepeatedCompositeFieldContainer[Click]
    def __init__(self, clicks: _Optional[_Iterable[_Union[Click, _Mapping]]] = ...) -> None: ...

class RecordClicksResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...
