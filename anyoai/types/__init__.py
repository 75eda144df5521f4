"""The API's data: attrs models for results (no I/O here) and TypedDicts for parameters."""

from .._model import NOT_GIVEN, APIObject, NotGiven, ResponseMeta, UnknownVariant
from .batches import Batch, BatchError, BatchList, BatchRequestCounts, BatchResult
from .chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageCustomToolCall,
    ChatCompletionMessageToolCall,
    Choice,
    ChunkChoice,
    FunctionCall,
    ToolCall,
    UnknownToolCall,
)
from .completions import Completion, CompletionChoice
from .edits import Edit
from .embeddings import CreateEmbeddingResponse, Embedding
from .files import FileDeleted, FileList, FileObject, Upload, UploadPart
from .models import Model, ModelDeleted, ModelList
from .moderations import Moderation, ModerationCreateResponse
from .shared import CompletionUsage, ContentFilterResult, PromptFilterResult

__all__ = [
    "NOT_GIVEN",
    "APIObject",
    "Batch",
    "BatchError",
    "BatchList",
    "BatchRequestCounts",
    "BatchResult",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionMessageCustomToolCall",
    "ChatCompletionMessageToolCall",
    "Choice",
    "ChunkChoice",
    "Completion",
    "CompletionChoice",
    "CompletionUsage",
    "ContentFilterResult",
    "CreateEmbeddingResponse",
    "Edit",
    "Embedding",
    "FileDeleted",
    "FileList",
    "FileObject",
    "FunctionCall",
    "Model",
    "ModelDeleted",
    "ModelList",
    "Moderation",
    "ModerationCreateResponse",
    "NotGiven",
    "PromptFilterResult",
    "ResponseMeta",
    "ToolCall",
    "UnknownToolCall",
    "UnknownVariant",
    "Upload",
    "UploadPart",
]
