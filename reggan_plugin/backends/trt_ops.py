"""Data: which ONNX ops the TensorRT 10.x ONNX parser supports (no code, no imports).

Source: onnx/onnx-tensorrt, docs/operators.md, the TensorRT 10.15 edition ("TensorRT 10.15 supports operators
in the inclusive range of opset 9 to opset 24"), and docs/Changelog.md for the 10.x release where an op was
added. Kept as a Python module rather than JSON so that it ships with the package without package-data rules.
To update for a new TensorRT: copy the Y/N columns of the new operators.md and add the changelog entries.
"""

SOURCE = {
    "repository": "https://github.com/onnx/onnx-tensorrt",
    "files": ["docs/operators.md (TensorRT 10.15 edition)", "docs/Changelog.md (10.0 ... 10.15)"],
    "tensorrt": "10.15",
}
LATEST = "10.15"
MIN_MAJOR = 10

# Highest ai.onnx opset the parser accepts, by TensorRT version (lowest is 9 throughout 10.x).
# 10.0 and 10.15 are stated in operators.md; 10.6 (ONNX 1.17 -> opset 22) and 10.11 (ONNX 1.18 -> opset 23)
# are inferred from the changelog's ONNX submodule updates.
OPSET_MIN = 9
OPSET_MAX = {(10, 0): 20, (10, 6): 22, (10, 11): 23, (10, 15): 24}

# "Y" rows of operators.md (TensorRT 10.15).
SUPPORTED = frozenset(["Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "Attention", "AveragePool", "BatchNormalization", "BlackmanWindow", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DeformConv", "DepthToSpace", "DequantizeLinear", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "EyeLike", "Flatten", "Floor", "Gather", "GatherElements", "GatherND", "Gelu", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample", "GroupNormalization", "GRU", "HammingWindow", "HannWindow", "HardSigmoid", "HardSwish", "Hardmax", "Identity", "If", "ImageScaler", "InstanceNormalization", "IsInf", "IsNaN", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "Loop", "LRN", "LSTM", "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool", "Mean", "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul", "Neg", "NonMaxSuppression", "NonZero", "Not", "OneHot", "Or", "Pad", "ParametricSoftplus", "Pow", "PRelu", "QuantizeLinear", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Range", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RMSNormalization", "RNN", "RoiAlign", "RotaryEmbedding", "Round", "STFT", "ScaledTanh", "Scan", "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tan", "Tanh", "TensorScatter", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample", "Where", "Xor"])

# "N" rows of operators.md (TensorRT 10.15): listed, and not supported.
UNSUPPORTED = frozenset(["AffineGrid", "Bernoulli", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "Col2Im", "CenterCropPad", "Compress", "ConcatFromSequence", "ConvInteger", "DFT", "Det", "DynamicQuantizeLinear", "ImageDecoder", "MatMulInteger", "MaxRoiPool", "MaxUnpool", "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional", "OptionalGetElement", "OptionalHasElement", "QLinearConv", "QLinearMatMul", "RegexFullMatch", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength", "SequenceMap", "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat", "StringNormalizer", "StringSplit", "TfIdfVectorizer", "Unique"])

# Ops supported only from a 10.x release on (Changelog.md); absent from this map = supported since 10.0.
ADDED_IN = {
    "DeformConv": (10, 1),
    "BlackmanWindow": (10, 4),
    "HammingWindow": (10, 4),
    "HannWindow": (10, 4),
    "STFT": (10, 5),
    "Attention": (10, 14),
    "RotaryEmbedding": (10, 15),
    "RMSNormalization": (10, 15),
    "TensorScatter": (10, 15),
}

# Attribute restrictions from the Restrictions column that a conv GAN can hit (checked by the preflight).
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_COORDINATE_MODES = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"})
RESIZE_NEAREST_MODES = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})
