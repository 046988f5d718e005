"""Front ends: how people and programs reach the engine.

    api.py        rule files or text -> a `RuleSet` (`engine.load_rules`, `engine.check_rules`)
    capture.py    a model -> its raw ExportedProgram, markers in (torch's HOP passes off)
    cli.py        `engine apply | check | dump`
    backend.py    rules as a `torch.compile` backend, on Dynamo's graphs
    torch_export.py  rules as torch.export's own HOP passes (`engine.torch_export_passes`)
    pt2.py        a saved `.pt2` -> its ExportedProgram, read as data (`engine.load_program`)
"""
