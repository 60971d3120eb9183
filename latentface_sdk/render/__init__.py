"""latentface_sdk.render"""
