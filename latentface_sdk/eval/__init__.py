"""latentface_sdk.eval"""
