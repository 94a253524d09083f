-- Orthanc routing rule: every chest radiograph (CR or DX) stored in this PACS is sent to the
-- screening service over DICOMweb STOW-RS (the DicomWeb server named "cxr" in Orthanc's config).
-- Only CR/DX instances are forwarded, so the results that come back (SC and SR) are not sent
-- again: no loops.
function OnStoredInstance(instanceId, tags, metadata, origin)
  local modality = tags["Modality"]
  if modality == "CR" or modality == "DX" then
    local ok, err = pcall(RestApiPost, "/dicom-web/servers/cxr/stow",
                          '{"Resources": ["' .. instanceId .. '"], "Synchronous": false}')
    if not ok then
      print("forward-to-cxr: could not queue instance " .. instanceId .. ": " .. tostring(err))
    end
  end
end
