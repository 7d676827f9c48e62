"""Methods: one folder per method (model, method, config.yaml, variants/, README.md).

Add a method: create its folder and add ``name: "merbench.methods.<folder>.method:Class"``
below. Methods outside this repository register through the ``merbench.methods``
entry-point group instead.
"""

BUILTIN_METHODS = {
    "majority": "merbench.methods.majority.method:MajorityMethod",
    "mlp": "merbench.methods.mlp.method:MLPMethod",
    "miust": "merbench.methods.miust.method:MIUSTMethod",
    "multifocus_blstm": "merbench.methods.multifocus_blstm.method:MultiFocusBLSTMMethod",
    "cross_modal_attention": "merbench.methods.cross_modal_attention.method:CrossModalAttentionMethod",
    "text_transformer": "merbench.methods.text_transformer.method:TextTransformerMethod",
    "lipsync_graph_erc": "merbench.methods.lipsync_graph_erc.method:LipSyncGraphERCMethod",
}
