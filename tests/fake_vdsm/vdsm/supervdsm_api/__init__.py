"""What supervdsmd serves: the ``@expose`` functions of the modules here."""


def expose(func):
    func.exposed_api = True
    return func
