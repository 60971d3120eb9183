"""latentface_sdk.train"""
