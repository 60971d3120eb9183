"""latentface_sdk.models"""
