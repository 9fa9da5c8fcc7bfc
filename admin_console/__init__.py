"""The admin console (管理后台): server-rendered pages over the features' service layer."""
